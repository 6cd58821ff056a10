"""profiles/slurm against a real Slurm (a single-node cluster started by the fixture, tests/slurm/cluster.py): the test
config runs end to end through snakemake-executor-plugin-slurm, its chunks are the chunks a local run computes, and a
second run has nothing to do.

The test cluster has no accounting database (slurmdbd), so the run uses the plugin's squeue status queries
(--slurm-status-command squeue); sacct-based status, account validation (sacctmgr) and the efficiency report, which
need accounting, are not exercised here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.workflow.conftest import REPO_ROOT, TINY_CONFIG, chunk_stems, copy_workflow, snakemake_env

from .cluster import SlurmCluster

# The cluster has no accounting: status from squeue (finished jobs stay listed for MinJobAge=600 s), first check
# after 2 s; Slurm logs of successful jobs are kept to check what ran where.
TEST_CLUSTER_SETTINGS = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
)


def _snakemake(cluster: SlurmCluster, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--workflow-profile",
        "none",
        "--profile",
        str(REPO_ROOT / "profiles" / "slurm"),
        *TEST_CLUSTER_SETTINGS,
        *args,
    ]
    result = subprocess.run(
        command, cwd=workdir, env=cluster.env(snakemake_env()), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(900)  # ~1-2 min on an idle 2-core machine; much more when other work shares the cores
def test_slurm_profile_runs_the_test_config_like_a_local_run(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    workdir = copy_workflow(tmp_path / "wf", TINY_CONFIG)
    dry = _snakemake(slurm_cluster, workdir, "-n")  # a dry run validated against the slurm executor: submits nothing
    assert slurm_cluster.run("squeue", "-h", "--states=all", "-o", "%i").stdout.split() == []
    assert "simulate" in dry.stdout

    run = _snakemake(slurm_cluster, workdir)
    log = run.stdout + run.stderr
    models = list(TINY_CONFIG["models"])
    num_chunks = sum(len(chunk_stems(TINY_CONFIG, model)) for model in models)
    # Every chunk was one Slurm job in the gpu partition with one (stand-in) GPU, and completed.
    job_ids = slurm_cluster.run("squeue", "-h", "--states=all", "-o", "%i").stdout.split()
    assert len(job_ids) == num_chunks, job_ids
    for job_id in job_ids:
        job = dict(
            field.split("=", 1)
            for field in slurm_cluster.run("scontrol", "-o", "show", "job", job_id).stdout.split()
            if "=" in field
        )
        assert (job["Partition"], job["JobState"], job["TresPerJob"]) == ("gpu", "COMPLETED", "gres:gpu:1"), job
    assert log.count("has been submitted with SLURM jobid") == num_chunks
    slurm_logs = list((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(slurm_logs) == num_chunks

    for model in models:  # the whole workflow ran: densities, report, dataset card
        table = pq.read_table(workdir / f"results/{model}/densities.parquet")
        model_cfg = TINY_CONFIG["models"][model]
        assert table.num_rows == model_cfg["n_samples"] * len(model_cfg["horizons"])
    assert (workdir / "results/hf/README.md").is_file()

    # Same results as locally: a chunk simulated here from the same spec is identical to the one Slurm computed.
    stem = chunk_stems(TINY_CONFIG, models[0])[1]
    local = tmp_path / "local.parquet"
    subprocess.run(
        [
            "density-engine",
            "simulate",
            "--spec",
            str(workdir / f"results/specs/{models[0]}/{stem}.json"),
            "--out",
            str(local),
            "--device",
            "cpu",
            "--threads",
            "1",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    columns = ["param_id", "horizon", "quantiles", "mean", "std"]
    from_slurm = pq.read_table(workdir / f"results/chunks/{models[0]}/{stem}.parquet").select(columns)
    assert from_slurm.equals(pq.read_table(local).select(columns))

    again = _snakemake(slurm_cluster, workdir)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert len(slurm_cluster.run("squeue", "-h", "--states=all", "-o", "%i").stdout.split()) == num_chunks
