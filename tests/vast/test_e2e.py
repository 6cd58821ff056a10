"""End to end: the workflow under profiles/vast against the fake Vast.ai gives the chunk payloads of a local run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.vast.conftest import REPO, VAST_PROFILE, run_controller, vast_command, vast_env

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


def chunk_targets(root: Path) -> list[str]:
    """The copy's two GARCH chunk files: results/chunks/<model>/chunk_NNNNN.<content key>.parquet, from its config's
    chunk plan (the one the Snakefile builds)."""
    from density_engine.workflow.chunks import plan_model
    from density_engine.workflow.config import load_yaml, validate_config

    config = validate_config(load_yaml(root / "config/config.yaml"), root / "workflow/schemas/config.schema.yaml", root)
    plan = plan_model("gjrgarch_normalized", config["models"]["gjrgarch_normalized"], root)
    return [f"results/chunks/gjrgarch_normalized/{stem}.parquet" for stem in plan.chunk_stems]


def tiny_copy(dest: Path) -> Path:
    """A copy of the workflow (not the package: hosts get it as a wheel) with a tiny CPU config (2 GARCH chunks)."""
    dest.mkdir(parents=True)
    for top in REPO.iterdir():  # Snakefile, environment.yml (conda: directives), ...
        if top.is_file() and not top.name.startswith("."):
            shutil.copy2(top, dest / top.name)
    for folder in ("workflow", "config", "resources"):
        if (REPO / folder).is_dir():
            shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["device"] = "cpu"
    for name, model in config["models"].items():
        model["enabled"] = name == "gjrgarch_normalized"
        model.update(num_paths=2048, horizons=[1, 5], chunk_size=2, n_samples=4)  # 2 chunks of 2 parameter sets
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def chunk_tables(root: Path) -> dict[str, object]:
    """Every chunk parquet's table without its schema metadata (which holds wall time and throughput)."""
    files = sorted((root / "results" / "chunks").rglob("*.parquet"))
    return {str(p.relative_to(root)): pq.read_table(p).replace_schema_metadata(None) for p in files}


def simulate_locally(remote: Path, local: Path, targets: list[str]) -> None:
    """The local reference: the same `density-engine simulate` command on the same specs, on this machine's CPU."""
    procs = []
    for rel in targets:
        # the spec of results/chunks/<model>/<chunk>.<content key>.parquet is results/specs/<model>/<same stem>.json
        stem = Path(rel).stem
        specs = sorted((remote / "results" / "specs" / Path(rel).parent.name).glob(f"{stem}*.json"))
        assert len(specs) == 1, specs
        spec = specs[0]
        out = local / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            "density-engine",
            "simulate",
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--threads",
            "1",
        ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for proc in procs:
        output = proc.communicate(timeout=300)[0]
        assert proc.returncode == 0, output.decode()[-3000:]


def test_demo_workflow_on_fake_vast_matches_a_local_run(fake_vast, tmp_path: Path) -> None:
    base_url, fake, api_key = fake_vast
    remote = tiny_copy(tmp_path / "vast")
    local = tmp_path / "local"
    env = vast_env(api_key)

    targets = chunk_targets(remote)
    # the profile's own start-up estimate: `density-engine estimate` on the run's resolved config, priced at the offers
    estimate = yaml.safe_load((VAST_PROFILE / "config.yaml").read_text())["vast-estimate-command"]
    cmd = vast_command(base_url, *targets, "--group-components", "simulate=1", "--vast-estimate-command", estimate)
    code, log = run_controller(cmd, remote, env, timeout=300)  # 2 submissions, 2 hosts
    assert code == 0, log[-8000:]
    assert "vast: cost estimate (density-engine ...) at current offer prices:" in log, log[-3000:]
    simulate_locally(remote, local, targets)

    expected, got = chunk_tables(local), chunk_tables(remote)
    assert len(expected) == 2 and sorted(got) == sorted(expected)
    for name, table in expected.items():
        assert got[name].equals(table), f"{name} differs between the local and the vast run"
        assert table.num_rows == 4  # 2 parameter sets x 2 horizons
    # the chunks were computed on the hosts: they exist in the hosts' private /workspace folders
    remote_chunks = [p for inst in fake.instances.values() for p in inst.sshd.workspace_dir.rglob("chunk_*.parquet")]
    assert sorted(p.name for p in remote_chunks) == sorted(Path(t).name for t in targets)
    for rel in ("results/logs/simulate", "results/benchmarks/simulate"):
        assert len([p for p in (remote / rel).rglob("*") if p.is_file()]) == 2

    assert fake.live_instances() == []
    [ledger_file] = (remote / "results" / "vast" / "ledger").glob("*.json")
    ledger = json.loads(ledger_file.read_text())
    assert len(ledger["instances"]) == len(fake.instances) <= 2 and ledger["total_cost_usd"] > 0
    # the API key is nowhere: not in local files or logs, not on the hosts (onstart, job scripts, logs, workspace)
    host_dirs = [inst.sshd.inst_dir for inst in fake.instances.values()]
    files = [p for root in (remote, *host_dirs) for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in files if api_key.encode() in p.read_bytes()] and api_key not in log
    assert any(p.name == "run.sh" for p in files)  # the scan did cover the hosts' job folders
    assert not list((remote / ".snakemake" / "vast").rglob("id_ed25519*"))  # the per-run key is gone with its hosts
    # Snakemake's metadata was written for the downloaded chunks: a second run would not simulate them again
    code, log = run_controller(vast_command(base_url, *targets, "-n"), remote, env)
    assert code == 0 and not re.search(r"^simulate\s+\d+", log, re.MULTILINE), log[-3000:]
    assert len(fake.instances) <= 2
