"""End to end: the demo workflow under profiles/vast against the fake Vast.ai gives the same chunk payloads as a local run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.vast.conftest import REPO, run_controller, vast_command, vast_env

pytestmark = [pytest.mark.ssh, pytest.mark.slow]

TARGETS = ["results/gjrgarch_normalized/densities.parquet", "results/rough_heston/densities.parquet"]


def tiny_copy(dest: Path) -> Path:
    """A copy of the workflow (not the package: hosts get it as a wheel) with a tiny CPU config: 3 chunks, 2 models."""
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", dest / "Snakefile")
    for folder in ("workflow", "config", "resources"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["device"] = "cpu"
    for name, model in config["models"].items():
        model["enabled"] = name in ("gjrgarch_normalized", "rough_heston")
        model.update(num_paths=2048, horizons=[1, 5], chunk_size=2)
    config["models"]["gjrgarch_normalized"]["n_samples"] = 4  # 2 chunks
    config["models"]["rough_heston"]["n_samples"] = 2  # 1 chunk
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def chunk_tables(root: Path) -> dict[str, object]:
    """Every chunk parquet's table without its schema metadata (which holds wall time and throughput)."""
    files = sorted((root / "results" / "chunks").rglob("*.parquet"))
    return {str(p.relative_to(root)): pq.read_table(p).replace_schema_metadata(None) for p in files}


def test_demo_workflow_on_fake_vast_matches_a_local_run(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    local = tiny_copy(tmp_path / "local")
    remote = tiny_copy(tmp_path / "vast")
    env = vast_env(api_key)

    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-c", "2", "--profile", "none", *TARGETS],
        cwd=local, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    cmd = vast_command(base_url, "--group-components", "simulate=2", *TARGETS)
    code, log = run_controller(cmd, remote, env, timeout=300)
    assert code == 0, log[-8000:]

    expected, got = chunk_tables(local), chunk_tables(remote)
    assert len(expected) == 3 and sorted(got) == sorted(expected)
    for name, table in expected.items():
        assert got[name].equals(table), f"{name} differs between the local and the vast run"
    # the chunks really were computed remotely: their metadata names the remote wheel's version
    meta = pq.read_schema(remote / next(iter(got))).metadata
    assert b"+g" in meta[b"density_engine.version"]
    for rel in ("results/logs/simulate", "results/benchmarks/simulate"):
        assert len([p for p in (remote / rel).rglob("*") if p.is_file()]) == 3

    assert fake.live_instances() == []
    ledger = json.loads((remote / "results" / "vast" / "cost_ledger.json").read_text())
    assert 1 <= len(ledger["instances"]) <= 2 and ledger["total_cost_usd"] > 0
    # a host was reused when it freed up: never more rentals than submissions (2 groups)
    assert len(fake.instances) <= 2
    leaked = [p for p in remote.rglob("*") if p.is_file() and api_key in p.read_text(errors="ignore")]
    assert not leaked and api_key not in log
