"""Which runs are alive: every controller holds an exclusive lock on ``<runs dir>/<label prefix>-<run id>.lock``.

The lock (``fcntl.flock``) is released by the kernel when the controller dies, even by SIGKILL, so a lock file that
can be locked belongs to a dead run. The files live in one folder per user
(``$XDG_CACHE_HOME/snakemake-executor-plugin-vast/runs``, default ``~/.cache/...``), so ``cleanup`` run from any folder
of this machine leaves runs in progress alone. A run that ends normally removes its file; a killed one leaves it
behind, which is how cleanup knows the run. Runs of other machines are unknown here: cleanup only destroys their
instances when told (``--run-id``/``--all-runs``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^(?P<prefix>.+)-(?P<run>[0-9a-f]{8})\.lock$")


def runs_dir() -> Path:
    """The per-user folder of run lock files."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "snakemake-executor-plugin-vast" / "runs"


@dataclass(frozen=True)
class RunState:
    """A run known to this machine: ``alive`` when its controller still holds the lock."""

    label_prefix: str
    run_id: str
    alive: bool
    info: dict


class RunLock:
    """The lock a running controller holds (see the module docstring)."""

    def __init__(self, label_prefix: str, run_id: str, *, workdir: str | os.PathLike[str] = ".") -> None:
        self.path = runs_dir() / f"{label_prefix}-{run_id}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        info = {"pid": os.getpid(), "workdir": str(Path(workdir).resolve()), "started": time.time()}
        os.ftruncate(self._fd, 0)
        os.write(self._fd, json.dumps(info).encode())

    def release(self, *, remove: bool = True) -> None:
        """Unlock (and remove the file: a run that ended normally needs no cleanup)."""
        if self._fd < 0:
            return
        if remove:
            self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = -1


def run_state(label_prefix: str, run_id: str) -> RunState | None:
    """The state of one run on this machine, or None when this machine never ran it (or it ended normally)."""
    path = runs_dir() / f"{label_prefix}-{run_id}.lock"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            info = json.loads(os.read(fd, 65536) or b"{}")
        except ValueError:
            info = {}
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return RunState(label_prefix, run_id, True, info)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return RunState(label_prefix, run_id, False, info)
    finally:
        os.close(fd)


def known_runs(label_prefix: str) -> list[RunState]:
    """Runs with this label prefix that this machine knows (alive, or killed without cleaning up)."""
    found = []
    folder = runs_dir()
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.lock")):
        match = _NAME.match(path.name)
        if match and match["prefix"] == label_prefix:
            state = run_state(label_prefix, match["run"])
            if state is not None:
                found.append(state)
    return found


def forget(label_prefix: str, run_id: str) -> None:
    """Remove a dead run's lock file once its leftovers are cleaned up (never a live run's)."""
    state = run_state(label_prefix, run_id)
    if state is not None and not state.alive:
        (runs_dir() / f"{label_prefix}-{run_id}.lock").unlink(missing_ok=True)
