"""Shared pytest configuration. Stage-specific fixtures live in each tests/<stage>/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture(scope="session", autouse=True)
def _finished_workflow_in_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """When tests of this session use ``finished_workflow`` (the tiny workflow run once end to end), start that run at
    the session's start, in the background, so that it runs beside the first tests (tests/workflow/finished.py)."""
    from tests.workflow import finished

    wanted = any("finished_workflow" in getattr(item, "fixturenames", ()) for item in request.session.items)
    process = finished.start(tmp_path_factory) if wanted else None
    yield
    finished.finish(process)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files that hold `slow` tests go first (each file kept whole, in its own order): the
    workers take tests in collection order, so the session ends on short tests instead of one worker finishing a long
    one while the other has nothing left. A plain run keeps pytest's order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
