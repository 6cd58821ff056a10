"""Fixtures of the Slurm tests: one real single-node Slurm cluster per session (tests/slurm/cluster.py)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator

import pytest

from .cluster import REQUIRE_SLURM_ENV, SlurmCluster, slurm_tests_required, slurm_unavailable_reason


def _unavailable() -> str | None:
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')"
    return slurm_unavailable_reason()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd on localhost for the whole session; skipped where Slurm cannot run here, except on
    CI or with DENSITY_ENGINE_REQUIRE_SLURM=1, where that is a failure."""
    reason = _unavailable()
    if reason is not None:
        if slurm_tests_required():
            pytest.fail(f"Slurm tests are required here (CI or {REQUIRE_SLURM_ENV}=1) but {reason}", pytrace=False)
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
