"""The real Snakemake CLI on the tiny config: end to end, nothing-to-do, exact reruns, recovery, graphs, report."""

from __future__ import annotations

import copy
import json
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

from density_engine.engine.chunkio import quantile_matrix

from .conftest import (
    REPO_ROOT,
    TINY_CONFIG,
    chunk_file,
    chunk_stems,
    forge_chunk,
    plan_key,
    run_snakemake,
    snakemake_env,
    with_column,
)

GARCH = "gjrgarch_normalized"
MODELS = ("gjrgarch_normalized", "rough_heston")


def _planned_chunks(stdout: str) -> set[str]:
    """Chunk parquet files that a dry run would (re)compute."""
    return set(re.findall(r"output: (results/chunks/[\w/.]+\.parquet)", stdout))


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
        manifests = list((finished_workflow / f"results/{model}").glob("densities.*.json"))
        assert [p.name for p in manifests] == [f"densities.{plan_key(TINY_CONFIG, model)}.json"]
        manifest = json.loads(manifests[0].read_text())
        assert manifest["chunks"] == chunk_stems(TINY_CONFIG, model) and manifest["rows"] == table.num_rows
        validation = pd.read_csv(finished_workflow / f"results/report/{model}/validation.csv")
        assert len(validation) == table.num_rows
        # z = (simulated - exact) / Monte Carlo s.e.: |z| < 5 for all of these <= 8 rows fails by chance with
        # probability < 8 * 6e-7 (heavier GARCH tails make the variance s.e. approximate, hence 5 rather than 4).
        assert validation["z"].abs().max() < 5, validation
        for figure in ("coverage", "fan", "validation", "errors", "runtime"):
            assert (finished_workflow / f"results/report/{model}/{figure}.png").stat().st_size > 5_000
        for stem in chunk_stems(TINY_CONFIG, model):  # every per-chunk file is named after the chunk's content key
            for folder, extension in (("chunks", "parquet"), ("benchmarks/simulate", "tsv"), ("logs/simulate", "log")):
                assert (finished_workflow / f"results/{folder}/{model}/{stem}.{extension}").is_file()
    assert (finished_workflow / "results/hf/README.md").is_file()
    data = finished_workflow / "results/hf/data"
    assert all(p.suffix == ".parquet" for p in data.rglob("*") if p.is_file())  # no stray file beside the shards
    for model in MODELS:  # the report's tables are HTML too (a CSV is only a download link in the report)
        page = (finished_workflow / f"results/report/{model}/validation.html").read_text()
        assert page.count("<tr>") == 1 + len(pd.read_csv(finished_workflow / f"results/report/{model}/validation.csv"))
    assert "local run: no rented hosts" in (finished_workflow / "results/report/costs.html").read_text()
    status = _status(finished_workflow)  # `density-engine status` after the run: every chunk done
    assert {m: (s["counts"]["done"], s["total"]) for m, s in status.items()} == {GARCH: (2, 2), "rough_heston": (1, 1)}
    assert all(s["path_steps_per_s"] > 0 for s in status.values())
    costs = pd.read_csv(finished_workflow / "results/report/costs.csv")  # no cost ledger: one "local run" row
    assert costs[["run_id", "instance", "cost_usd"]].values.tolist() == [["local", "local run: no rented hosts", 0]]
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
    assert _planned_chunks(dry.stdout) == {chunk_file(changed, GARCH, 2), chunk_file(changed, "rough_heston", 0)}
    assert chunk_file(changed, GARCH, 1) == chunk_file(TINY_CONFIG, GARCH, 1)  # unchanged content, unchanged name
    # n_samples changed the grid: re-sampled (one wildcard rule for every model), but only chunk 2 re-runs
    assert re.search(rf"^rule grid:\n\s+output: results/grid/{GARCH}/parameters\.", dry.stdout, re.MULTILINE)


@pytest.mark.parametrize("forget", ["mtime-only", "metadata"])
def test_num_paths_change_reruns_without_snakemake_metadata(
    finished_workflow: Path, tmp_path: Path, forget: str
) -> None:
    """The chunk names carry the content keys: a settings change is seen from the file names alone, with mtime as the
    only rerun trigger, or with .snakemake/metadata deleted; the merge then holds the new settings only."""
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    changed = copy.deepcopy(TINY_CONFIG)
    changed["models"][GARCH]["num_paths"] = 5000  # every GARCH chunk changes, rough Heston does not
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(changed))
    flags = ["--rerun-triggers", "mtime"] if forget == "mtime-only" else []
    if forget == "metadata":
        shutil.rmtree(workdir / ".snakemake/metadata")
    dry = run_snakemake(workdir, "-n", *flags)  # the whole workflow (`all`)
    assert _planned_chunks(dry.stdout) == {chunk_file(changed, GARCH, k) for k in (0, 1)}
    assert {"merge_gjrgarch_normalized", "report_figures", "dataset_shards_gjrgarch_normalized"} <= set(
        re.findall(r"^rule (\w+):", dry.stdout, re.MULTILINE)
    )
    manifest = f"results/{GARCH}/densities.{plan_key(changed, GARCH)}.json"
    run_snakemake(workdir, "-c", "2", manifest, *flags)  # up to the merge (report and dataset as dry-run above)
    merged = pq.read_table(workdir / f"results/{GARCH}/densities.parquet")
    assert merged.num_rows == changed["models"][GARCH]["n_samples"] * len(changed["models"][GARCH]["horizons"])
    assert set(merged.column("num_paths").to_pylist()) == {5000}
    manifests = [f"results/{GARCH}/{p.name}" for p in (workdir / f"results/{GARCH}").glob("densities.*.json")]
    assert manifests == [manifest]  # the old plan's manifest is gone
    assert len(list((workdir / "results/chunks" / GARCH).glob("*.parquet"))) == 4  # the old chunks stay, unmerged
    again = run_snakemake(workdir, "-n", manifest, *flags)
    assert "Nothing to be done" in again.stdout + again.stderr
    if forget == "metadata":  # `density-engine clean --stale`: lists the old config's files, removes them on --delete
        old_stems = set(chunk_stems(TINY_CONFIG, GARCH))
        clean = ["density-engine", "clean", "--stale"]
        listed = subprocess.run(clean, cwd=workdir, capture_output=True, text=True, check=True).stdout
        removed = {line.split()[-1] for line in listed.splitlines() if line.startswith("would remove ")}
        assert {Path(p).name.split(".")[0] + "." + Path(p).name.split(".")[1] for p in removed} == old_stems
        assert {Path(p).parent.as_posix() for p in removed} == {  # (the spec job already removed the old specs)
            f"results/{kind}/{GARCH}" for kind in ("chunks", "logs/simulate", "benchmarks/simulate")
        }
        assert all(p.exists() for p in map(workdir.joinpath, removed))  # a dry run by default
        subprocess.run([*clean, "--delete"], cwd=workdir, capture_output=True, text=True, check=True)
        assert not any(p.exists() for p in map(workdir.joinpath, removed))
        assert len(list((workdir / "results/chunks" / GARCH).glob("*.parquet"))) == 2
        again = run_snakemake(workdir, "-n", manifest, *flags)
        assert "Nothing to be done" in again.stdout + again.stderr, again.stdout


def test_simulate_params_and_log_carry_the_model_settings(finished_workflow: Path) -> None:
    model_cfg = TINY_CONFIG["models"][GARCH]
    stem = chunk_stems(TINY_CONFIG, GARCH)[1]
    log = (finished_workflow / f"results/logs/simulate/{GARCH}/{stem}.log").read_text().splitlines()
    key = stem.split(".")[1]
    assert log[0] == (
        f"{GARCH} chunk 00001 key {key}: sampler=sobol seed={model_cfg['seed']} num_paths={model_cfg['num_paths']} "
        f"num_quantiles=64 horizons=1,3 dt=None time_grid=exact chunk_size={model_cfg['chunk_size']}"
    )
    target = chunk_file(TINY_CONFIG, GARCH, 1)
    dry = run_snakemake(finished_workflow, "-n", "--forcerun", "simulate", "--printshellcmds", target)
    assert f"key {key}: 'sampler=sobol seed={model_cfg['seed']} num_paths=" in dry.stdout
    assert re.search(r"resources: .*\bgpu=0, .*device=cpu", dry.stdout)  # CPU chunks ask for no GPU


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "sampler",
            "sobel",
            "models.gjrgarch_normalized.sampler: 'sobel' is not a sampler; allowed values: sobol, lhs",
        ),
        # run size: 1e12 paths (as YAML writes it, a float) would need terabytes per chunk job
        ("num_paths", 1e12, "config key models.gjrgarch_normalized.num_paths: a simulate job needs ~40.0 TB ("),
        # a billion parameter sets: planning alone would take hours; it stops at once
        ("n_samples", 10**9, "config key models.gjrgarch_normalized.n_samples: 1,000,000,000 parameter sets, above"),
    ],
)
def test_bad_config_stops_before_any_job(make_workflow, key: str, value: object, message: str) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH][key] = value
    workdir = make_workflow(config)
    result = run_snakemake(workdir, "-c", "1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output, output
    assert next(line for line in output.splitlines() if message in line).startswith("invalid configuration: ")
    assert not (workdir / "results").exists()


def test_model_target_rules_exist_for_every_model(finished_workflow: Path) -> None:
    """A target rule per registered model, whatever the config enables: a disabled one names the config key."""
    listed = run_snakemake(finished_workflow, "--list-rules").stdout.split()
    assert {"gjrgarch_normalized", "rough_heston", "rough_bergomi", "grid", "simulate", "all"} <= set(listed)
    result = run_snakemake(finished_workflow, "-n", "rough_bergomi", check=False)
    assert result.returncode != 0
    assert "model rough_bergomi is not enabled: set models.rough_bergomi.enabled: true" in result.stdout + result.stderr


def test_large_grid_dry_run_lists_every_chunk(make_workflow) -> None:
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH].update(n_samples=100_000, chunk_size=200, num_paths=2_000_000)
    config["models"]["rough_heston"]["enabled"] = False
    workdir = make_workflow(config)
    result = run_snakemake(workdir, "-n", "--quiet", "rules")
    assert re.search(r"simulate\s+500\b", result.stdout), result.stdout
    # a large run says how large before it is planned (stderr; `--dag | dot` reads stdout)
    summary = [line for line in result.stderr.splitlines() if line.startswith("run size: ")]
    assert len(summary) == 1, result.stderr
    assert re.fullmatch(
        r"run size: 1 model\(s\), 500 chunks, 6e\+11 path-steps; ~[\d.,]+ CPU-core hours, ~[\d.]+ H100 to ~[\d.]+ "
        r"RTX_4090 GPU-hours \(GPU figures estimated\) \(details: density-engine estimate\)",
        summary[0],
    ), summary
    assert not (workdir / "results").exists()  # the grid is not sampled to build the DAG


def test_dag_rulegraph_and_lint(finished_workflow: Path, tmp_path: Path) -> None:
    dag = run_snakemake(finished_workflow, "--dag", "--forceall").stdout
    assert dag.lstrip().startswith("digraph snakemake_dag")
    rulegraph = run_snakemake(finished_workflow, "--rulegraph").stdout
    assert all(rule in rulegraph for rule in ("simulate", f"merge_{GARCH}", "report_figures", "report_costs", "all"))
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
    captions = ("Parameter-space coverage", "Quantile fan charts", "z-score", "Error budget of", "Per-chunk runtime")
    for caption_phrase in (*captions, "Costs"):
        assert caption_phrase in html
    assert "read from the 64 stored quantile" in html  # the config's num_quantiles (Jinja), not a hard-coded 512
    assert "64 for gjrgarch_normalized, 64 for rough_heston" in html  # workflow.rst: per enabled model
    assert "validation.html" in html and "costs.html" in html  # tables shown inline (HTML), not CSV download links
    assert "filename=validation.csv" not in html and "filename=costs.csv" not in html


def _ledger(run_id: str, costs: list[float]) -> dict:
    """One run's cost ledger in the vast executor's format (snakemake_executor_plugin_vast.ledger.RunLedger.summary)."""
    instances = [
        {
            "instance_id": 1000 + i,
            "machine_id": 50 + i,
            "gpu_name": "RTX 4090",
            "num_gpus": 1,
            "dph_total": 0.4,
            "label": f"density-engine-{run_id}-{i}",
            "rented_at": 1_700_000_000.0,
            "ready_at": 1_700_000_100.0,
            "destroyed_at": 1_700_000_000.0 + cost / 0.4 * 3600,
            "end_reason": "end of run",
            "cost_usd": cost,
        }
        for i, cost in enumerate(costs)
    ]
    return {
        "run_id": run_id,
        "started_at": 1_700_000_000.0 + len(run_id),
        "written_at": 1_700_010_000.0,
        "final": True,
        "budget_usd": 10.0,
        "total_cost_usd": sum(costs),
        "live_instances": 0,
        "instances": instances,
    }


def test_cost_table_follows_the_vast_ledger(finished_workflow: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    ledgers = workdir / "results/vast/ledger"
    ledgers.mkdir(parents=True)
    (ledgers / "abc123.json").write_text(json.dumps(_ledger("abc123", [0.25, 0.5])))
    # a ledger written by a run is no input: it never makes the workflow out of date (the executor finalizes it before
    # the table is built); the table is rebuilt with the densities, or on request
    assert "Nothing to be done" in run_snakemake(workdir, "-n").stdout
    run_snakemake(workdir, "-c", "1", "--forcerun", "report_costs")
    costs = pd.read_csv(workdir / "results/report/costs.csv")
    assert costs["instance"].tolist() == ["1000", "1001", "total (2 instance(s))"]
    assert costs["cost_usd"].tolist() == pytest.approx([0.25, 0.5, 0.75])
    assert costs["hours"].tolist() == pytest.approx([0.625, 1.25, 1.875])
    assert set(costs["run_id"]) == {"abc123"} and costs["end_reason"].iloc[-1] == "budget $10"
    assert "Nothing to be done" in run_snakemake(workdir, "-n").stdout
    time.sleep(0.01)
    (ledgers / "def456.json").write_text(json.dumps(_ledger("def4567", [1.0])))  # the next vast run's ledger
    run_snakemake(workdir, "-c", "1", "--forcerun", "report_costs")
    costs = pd.read_csv(workdir / "results/report/costs.csv")  # the history: both runs, and their total
    assert costs["run_id"].tolist() == ["abc123", "abc123", "abc123", "def4567", "def4567", "all runs"]
    assert costs["cost_usd"].iloc[-1] == pytest.approx(1.75)


def _status(workdir: Path) -> dict:
    """`density-engine status --json` in the workflow folder, as a user runs it."""
    result = subprocess.run(
        ["density-engine", "status", "--json"], cwd=workdir, capture_output=True, text=True, check=True
    )
    return {m["model"]: m for m in json.loads(result.stdout)["models"]}


def test_bad_chunks_are_quarantined_and_resimulated(finished_workflow: Path, tmp_path: Path) -> None:
    """Three bad chunks: doubled quantiles with valid checksums (what a buggy engine would write), a chunk edited after
    its checksum (two rows dropped by hand), a truncated file. The merges fail naming each chunk and its check
    (profiles/local prints the logs), the bad chunks move to results/quarantine/, the last good densities and dataset
    stay byte for byte; `density-engine status` shows them; the next run re-simulates exactly those three chunks and
    the dataset comes back identical."""
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    shutil.copytree(REPO_ROOT / "profiles", workdir / "profiles")
    kept = [*(workdir / "results/hf").rglob("*"), *(workdir / f"results/{m}/densities.parquet" for m in MODELS)]
    before = {p: p.read_bytes() for p in kept if p.is_file()}
    densities = {m: pq.read_table(workdir / f"results/{m}/densities.parquet") for m in MODELS}
    doubled, edited, truncated = (
        workdir / chunk_file(TINY_CONFIG, GARCH, 0),
        workdir / chunk_file(TINY_CONFIG, GARCH, 1),
        workdir / chunk_file(TINY_CONFIG, "rough_heston", 0),
    )
    table = pq.read_table(doubled)
    forge_chunk(doubled, with_column(table, "quantiles", quantile_matrix(table).astype(float) * 2))
    table = pq.read_table(edited)
    pq.write_table(table.slice(0, table.num_rows - 2), edited)
    truncated.write_bytes(truncated.read_bytes()[:-200])

    result = run_snakemake(workdir, "--profile", "profiles/local", "-c1", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for path, check in ((doubled, "moments"), (edited, "checksum"), (truncated, "readable")):
        assert f"{path.relative_to(workdir)}: {check} check failed: " in output, output[-5000:]
        assert (workdir / "results/quarantine" / path.parent.name / path.name).is_file() and not path.exists()
    assert "run snakemake again: it re-simulates exactly these chunks" in output
    assert "the quantiles need std >= " in output and "changed after it was written" in output
    assert {p: p.read_bytes() for p in kept if p.is_file()} == before  # nothing bad reached densities or results/hf
    status = _status(workdir)
    assert status[GARCH]["counts"] == {"done": 0, "started": 0, "failed": 0, "quarantined": 2, "pending": 0}
    assert status["rough_heston"]["counts"]["quarantined"] == 1

    dry = run_snakemake(workdir, "-n")
    expected = {str(p.relative_to(workdir)) for p in (doubled, edited, truncated)}
    assert _planned_chunks(dry.stdout) == expected
    run_snakemake(workdir, "-c", "2")
    for model in MODELS:  # re-simulated from the same specs: the same values
        assert pq.read_table(workdir / f"results/{model}/densities.parquet").equals(densities[model])
    assert {p: p.read_bytes() for p in kept if p.is_file() and "results/hf" in str(p)} == {
        p: data for p, data in before.items() if "results/hf" in str(p)
    }
    assert all(m["counts"]["done"] == m["total"] for m in _status(workdir).values())


@pytest.mark.slow
def test_killed_run_recovers_with_rerun_incomplete(finished_workflow: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "wf"
    shutil.copytree(finished_workflow, workdir, symlinks=True)
    config = copy.deepcopy(TINY_CONFIG)
    config["models"][GARCH]["n_samples"] = 8  # two new chunks: 2 and 3
    (workdir / "config/config.yaml").write_text(yaml.safe_dump(config))
    chunks = workdir / "results/chunks" / GARCH
    logs = workdir / "results/logs/simulate" / GARCH
    stems = chunk_stems(config, GARCH)
    targets = [chunk_file(config, GARCH, k) for k in (2, 3)]
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
            if (chunks / f"{stems[done]}.parquet").exists() and (logs / f"{stems[running]}.log").exists():
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
    assert not (chunks / f"{stems[running]}.parquet").exists()  # atomic writes: no partial file under that name
    kept = (0, 1, done)
    finished_mtimes = {k: (chunks / f"{stems[k]}.parquet").stat().st_mtime_ns for k in kept}
    run_snakemake(workdir, "--unlock")  # kill -9 leaves Snakemake's lock behind (Ctrl-C would not)
    result = run_snakemake(workdir, "-c", "2", "--rerun-incomplete", f"results/{GARCH}/densities.parquet")
    log = result.stdout + result.stderr
    assert {k: (chunks / f"{stems[k]}.parquet").stat().st_mtime_ns for k in kept} == finished_mtimes
    assert re.findall(r"output: (results/chunks/[\w/.]+\.parquet)", log) == [chunk_file(config, GARCH, running)]
    merged = pq.read_table(workdir / f"results/{GARCH}/densities.parquet")
    assert merged.num_rows == 8 * len(config["models"][GARCH]["horizons"])


@pytest.mark.slow
def test_shipped_demo_config_end_to_end(make_workflow) -> None:
    """config/config.yaml as shipped (all three models), `snakemake -c 2` as a user runs it: every model's densities
    have n_samples x horizons rows of num_quantiles quantiles, and a second run has nothing to do."""
    workdir = make_workflow(None)
    demo = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    run_snakemake(workdir, "-c", "2", timeout=600)
    enabled = [name for name, model_cfg in demo["models"].items() if model_cfg.get("enabled", True)]
    assert enabled == ["gjrgarch_normalized", "rough_heston", "rough_bergomi"]
    for model in enabled:
        model_cfg = demo["models"][model]
        table = pq.read_table(workdir / f"results/{model}/densities.parquet")
        assert table.num_rows == model_cfg["n_samples"] * len(model_cfg["horizons"]), model
        assert table.schema.field("quantiles").type.list_size == model_cfg["num_quantiles"] == 512
        assert set(table.column("num_paths").to_pylist()) == {model_cfg["num_paths"]}
        assert sorted(set(table.column("horizon").to_pylist())) == model_cfg["horizons"]
    second = run_snakemake(workdir, "-n")
    assert "Nothing to be done" in second.stdout + second.stderr
