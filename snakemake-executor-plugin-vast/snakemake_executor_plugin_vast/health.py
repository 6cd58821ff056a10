"""Host health: what a remote error means, which hosts to retire, and set-up errors that would hit every host.

* :func:`classify` names well-known remote failures (a full disk first of all: paramiko reports it as "size
  mismatch in put!", a job as "No space left on device") so messages say what happened;
* :class:`HealthBook` remembers, per host, the distinct jobs that failed on it (a host on which two different jobs
  failed is retired and its machine avoided) and, per job, the hosts it failed on (its retry avoids them);
* set-up errors are fingerprinted without host details: the same set-up error on two different machines is a
  configuration problem (e.g. a wrong ``--vast-remote-python``), not a host fault, and stops the run instead of renting
  one paid machine after another.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

DISK_FULL = "disk full"

_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (DISK_FULL, ("no space left on device", "size mismatch in put", "disk quota exceeded", "errno 28", "enospc")),
    ("out of memory", ("out of memory", "cannot allocate memory", "killed process", "oom-kill", "memoryerror")),
    ("CUDA error", ("cuda error", "no cuda gpus are available", "cuda driver version is insufficient")),
)

HOST_FAULTS = frozenset({DISK_FULL, "CUDA error"})
"""Kinds of error that say the host, not the job, is broken."""

REPEATED_FAILURES = 2
"""Distinct jobs failing on one host after which it is retired (and its machine avoided)."""


def classify(text: str) -> str | None:
    """The kind of a remote error (``"disk full"``, ``"out of memory"``, ``"CUDA error"``) or None."""
    lowered = (text or "").lower()
    for kind, needles in _PATTERNS:
        if any(needle in lowered for needle in needles):
            return kind
    return None


_VOLATILE = re.compile(
    r"instance \d+|machine \d+|\d+\.\d+\.\d+\.\d+(:\d+)?|\[?[0-9a-f:]+\]?:\d+|\b\w+@[\w.-]+(:\d+)?|"
    r"/runs/[0-9a-f]{8}/|\b\d{4,}\b"
)


def fingerprint(reason: str) -> str:
    """A set-up error's text without host-specific parts (instance and machine ids, addresses, run ids)."""
    return " ".join(_VOLATILE.sub("#", reason).split())[:500]


@dataclass
class HealthBook:
    """Failures per host and per job, and set-up error fingerprints per machine (thread-safe)."""

    failed_jobs_by_host: dict[int, set[str]] = field(default_factory=dict)
    hosts_by_job: dict[str, set[int]] = field(default_factory=dict)
    machines_by_job: dict[str, set[int]] = field(default_factory=dict)
    setup_errors: dict[str, set[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def job_failed(self, jobid: str, instance_id: int, machine_id: int | None) -> bool:
        """Record a job failure on a host; True when the host has now failed ``REPEATED_FAILURES`` distinct jobs."""
        with self._lock:
            jobs = self.failed_jobs_by_host.setdefault(instance_id, set())
            jobs.add(jobid)
            self.hosts_by_job.setdefault(jobid, set()).add(instance_id)
            if machine_id is not None:
                self.machines_by_job.setdefault(jobid, set()).add(machine_id)
            return len(jobs) >= REPEATED_FAILURES

    def avoid_for(self, jobid: str) -> tuple[frozenset[int], frozenset[int]]:
        """(instance ids, machine ids) a job failed on before: its next attempt goes elsewhere."""
        with self._lock:
            return frozenset(self.hosts_by_job.get(jobid, ())), frozenset(self.machines_by_job.get(jobid, ()))

    def setup_failed(self, reason: str, machine_id: int | None, instance_id: int) -> int:
        """Record a set-up error; returns on how many distinct machines (or instances) this error happened."""
        key = fingerprint(reason)
        with self._lock:
            seen = self.setup_errors.setdefault(key, set())
            seen.add(machine_id if machine_id is not None else -instance_id)
            return len(seen)
