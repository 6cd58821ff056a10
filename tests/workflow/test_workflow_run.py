"""The real Snakemake CLI on the tiny config: end to end, nothing-to-do, exact reruns, recovery, graphs, report."""

from __future__ import annotations

import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import TINY_CONFIG, run_snakemake, snakemake_env

GARCH = "gjrgarch_normalized"
MODELS = ("gjrgarch_normalized", "rough_heston")


def _planned_chunks(stdout: str) -> set[str]:
    """Chunk parquet files that a dry run would (re)compute."""
    return set(re.findall(r"output: (results/chunks/[\w/]+\.parquet)", stdout))


def _processes_in(folder: Path) -> list[int]:
    """PIDs of processes whose working directory is ``folder`` (a unique temporary path of this test)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if os.readlink(entry / "cwd") == str(folder):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_end_to_end_outputs(finished_workflow: Path) -> None:
    for model in MODELS:
        model_cfg = TINY_CONFIG["models"][model]
        table = pq.read_table(finished_workflow / f"results/{model}/densities.parquet")
        assert table.num_rows == model_cfg["n_samples"] * len(model_cfg["horizons"])
        assert sorted(set(table.column("param_id").to_pylist())) == list(range(model_cfg["n_samples"]))
        assert b"density_engine.merge" in table.schema.metadata
        validation = pd.read_csv(finished_workflow / f"results/report/{model}/validation.csv")
        assert len(validation) == table.num_rows
        # z = (simulated - exact) / Monte Carlo s.e.: |z| < 5 for all of these <= 8 rows fails by chance with
        # probability < 8 * 6e-7 (heavier GARCH tails make the variance s.e. approximate, hence 5 rather than 4).
        assert validation["z"].abs().max() < 5, validation
        for figure in ("coverage", "fan", "validation", "runtime"):
            assert (finished_workflow / f"results/report/{model}/{figure}.png").stat().st_size > 5_000
        assert (finished_workflow / f"results/benchmarks/simulate/{model}/chunk_00000.tsv").is_file()
    assert (finished_workflow / "results/hf/README.md").is_file()
    second = run_snakemake(finished_workflow, "-n")
    assert "Nothing to be done" in second.stdout + second.stderr


def test_config_change_reruns_exactly_the_affected_chunks(finished_workflow: Path, tmp_path: Path) -> None:
    changed = copy.deepcopy(TINY_CONFIG)
    changed["models"][GARCH]["n_samples"] = 5  # Sobol prefix: chunks 0 and 1 keep their content, chunk 2 is new
    changed["models"]["rough_heston"]["num_paths"] = 5000  # every rough Heston chunk changes
    changed["device"] = "auto"  # the device is not a rerun trigger
    override = tmp_path / "changed.yaml"
    override.write_text(yaml.safe_dump(changed))
    dry = run_snakemake(finished_workflow, "-n", "--configfile", str(override))
    assert _planned_chunks(dry.stdout) == {
        "results/chunks/gjrgarch_normalized/chunk_00002.parquet",
        "results/chunks/rough_heston/chunk_00000.parquet",
    }
    assert "rule grid_gjrgarch" in dry.stdout  # n_samples changed the grid: re-sampled, but only chunk 2 re-runs


def test_bad_config_stops_before_any_job(make_workflow) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH]["sampler"] = "sobel"
    workdir = make_workflow(config)
    result = run_snakemake(workdir, "-c", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "models.gjrgarch_normalized.sampler: 'sobel' is not a sampler; allowed values: sobol, lhs" in output
    assert not (workdir / "results").exists()


def test_large_grid_dry_run_lists_every_chunk(make_workflow) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH].update(n_samples=100_000, chunk_size=200)
    config["models"]["rough_heston"]["enabled"] = False
    workdir = make_workflow(config)
    result = run_snakemake(workdir, "-n", "--quiet", "rules")
    assert re.search(r"simulate\s+500\b", result.stdout), result.stdout
    assert not (workdir / "results").exists()  # the grid is not sampled to build the DAG


def test_dag_rulegraph_and_lint(finished_workflow: Path, tmp_path: Path) -> None:
    dag = run_snakemake(finished_workflow, "--dag", "--forceall").stdout
    assert dag.lstrip().startswith("digraph snakemake_dag")
    rulegraph = run_snakemake(finished_workflow, "--rulegraph").stdout
    assert all(rule in rulegraph for rule in ("simulate", "merge", "report_figures", "all"))
    if shutil.which("dot"):
        svg = subprocess.run(["dot", "-Tsvg"], input=dag, capture_output=True, text=True, check=True).stdout
        assert "<svg" in svg
    lint = run_snakemake(finished_workflow, "--lint")
    assert "Congratulations" in lint.stdout + lint.stderr, lint.stdout + lint.stderr


def test_html_report(finished_workflow: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    run_snakemake(finished_workflow, "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 50_000
    for caption_phrase in ("Parameter-space coverage", "Quantile fan charts", "z-score", "Per-chunk runtime"):
        assert caption_phrase in html


@pytest.mark.slow
def test_killed_run_recovers_with_rerun_incomplete(finished_workflow: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH]["n_samples"] = 8  # two new chunks: 2 and 3
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    chunks = workdir / "results/chunks" / GARCH
    logs = workdir / "results/logs/simulate" / GARCH
    targets = [f"results/chunks/{GARCH}/chunk_0000{k}.parquet" for k in (2, 3)]
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "none", "-c", "1", *targets]
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=snakemake_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def one_done_other_running() -> tuple[int, int] | None:
        for done, running in ((2, 3), (3, 2)):  # -c1 runs the two new chunks one after the other, in either order
            if (chunks / f"chunk_0000{done}.parquet").exists() and (logs / f"chunk_0000{running}.log").exists():
                return done, running
        return None

    deadline = time.monotonic() + 180
    while (state := one_done_other_running()) is None:
        assert process.poll() is None, "snakemake ended before it could be interrupted"
        assert time.monotonic() < deadline, "the second new chunk never started"
        time.sleep(0.05)
    done, running = state
    # A crash: SIGKILL the controller and the running job (Snakemake starts jobs in their own session).
    os.killpg(process.pid, signal.SIGKILL)
    for pid in _processes_in(workdir.resolve()):
        os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert not (chunks / f"chunk_0000{running}.parquet").exists()  # atomic writes: no partial file under that name
    kept = (0, 1, done)
    finished_mtimes = {k: (chunks / f"chunk_0000{k}.parquet").stat().st_mtime_ns for k in kept}
    run_snakemake(workdir, "--unlock")  # kill -9 leaves Snakemake's lock behind (Ctrl-C would not)
    result = run_snakemake(workdir, "-c", "2", "--rerun-incomplete", f"results/{GARCH}/densities.parquet")
    log = result.stdout + result.stderr
    assert {k: (chunks / f"chunk_0000{k}.parquet").stat().st_mtime_ns for k in kept} == finished_mtimes
    assert re.findall(r"output: (results/chunks/[\w/]+\.parquet)", log) == [
        f"results/chunks/{GARCH}/chunk_0000{running}.parquet"
    ]
    merged = pq.read_table(workdir / f"results/{GARCH}/densities.parquet")
    assert merged.num_rows == 8 * len(config["models"][GARCH]["horizons"])
