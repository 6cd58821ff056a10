"""The tiny workflow run end to end once per test session (the ``finished_workflow`` fixture), started in the background
when the session starts (tests/conftest.py), so that it runs beside the first tests instead of holding up the first test
that needs it. Under pytest-xdist the first worker to start it runs it for every worker: the run's folder is created
atomically in the session's shared temporary folder, and the run's shell writes its exit status to ``rc`` when it ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY_CONFIG, copy_workflow, snakemake_env

FOLDER = "finished-workflow"
#: The background run started by this process (kept so that it is waited for, never left to the garbage collector).
_started: list[subprocess.Popen] = []


def under_xdist() -> bool:
    """Whether this process is a pytest-xdist worker."""
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


def shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's folder: in the session's temporary folder, which every xdist worker's own folder is inside."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if under_xdist() else base) / FOLDER


def start(tmp_path_factory: pytest.TempPathFactory) -> subprocess.Popen | None:
    """Start ``snakemake -c 2`` on the tiny config in the background, unless this session (any worker) already did."""
    folder = shared_folder(tmp_path_factory)
    try:
        folder.mkdir()
    except FileExistsError:
        return None
    workdir = copy_workflow(folder / "wf", TINY_CONFIG)
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", "none", "-c", "2"]
    script = '"$@" > ../snakemake.log 2>&1; echo $? > ../rc.tmp; mv ../rc.tmp ../rc'
    process = subprocess.Popen(
        ["sh", "-c", script, "sh", *command], cwd=workdir, env=snakemake_env(), start_new_session=True
    )
    _started.append(process)
    return process


def wait(tmp_path_factory: pytest.TempPathFactory, timeout: float = 600) -> Path:
    """The finished run's folder, once the run has ended; the test fails with the run's output if it failed."""
    folder = shared_folder(tmp_path_factory)
    rc = folder / "rc"
    deadline = time.monotonic() + timeout
    while not rc.is_file():
        if time.monotonic() > deadline:
            pytest.fail(f"the tiny workflow run in {folder} did not end within {timeout} s")
        time.sleep(0.2)
    if rc.read_text().strip() != "0":
        log = (folder / "snakemake.log").read_text(errors="replace")
        pytest.fail(f"snakemake -c 2 on the tiny config failed (exit status {rc.read_text().strip()}):\n{log}")
    return folder / "wf"


def finish(process: subprocess.Popen | None) -> None:
    """At the end of the session: under xdist wait for the run (another worker may still need it), else stop it."""
    if process is None or process.poll() is not None:
        return
    if not under_xdist():
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=600)


def own_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The finished run for this process: the run's folder itself, or under xdist this worker's copy of it (mtimes and
    .snakemake/ kept: as up to date as the original), so that no two processes work in one folder."""
    start(tmp_path_factory)  # (a no-op when the session start already started it)
    workdir = wait(tmp_path_factory)
    if not under_xdist():
        return workdir
    own = tmp_path_factory.mktemp("finished") / "wf"
    shutil.copytree(workdir, own, symlinks=True)
    return own
