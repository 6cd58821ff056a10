"""Shared pytest configuration. Stage-specific fixtures live in each tests/<stage>/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tests must never reach the network or pick up a user's credentials.
os.environ.setdefault("HF_HUB_OFFLINE", "0")
os.environ.pop("VAST_API_KEY", None)
os.environ.pop("HF_TOKEN", None)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root folder."""
    return REPO_ROOT
