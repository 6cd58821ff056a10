"""Booting a rented instance: the onstart script, what a status row means, and the SSH connection.

Readiness is judged from the monitor's list rows (:func:`boot_verdict`): ``running`` with an SSH endpoint is ready;
a fatal ``status_msg`` (image pull limits, OCI runtime errors, a full disk, ...) or a terminal status fails fast; no
row for longer than the read-lag grace means the instance is gone; everything else waits until the boot timeout.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

from snakemake_executor_plugin_vast.ssh import SshConnection, TofuHostKeys, connect_first

FATAL_STATUS_PATTERNS = (
    "oci runtime create failed",
    "error response from daemon",
    "failed to pull image",
    "pull rate limit",
    "toomanyrequests",
    "manifest unknown",
    "unauthorized",
    "no space left on device",
    "unexpected eof",
)
"""Substrings of ``status_msg`` (lower-cased) after which an instance never becomes usable."""

TERMINAL_BOOT_STATUSES = frozenset({"exited", "offline", "unknown", "stopped", "error"})
"""``actual_status`` values that, while booting, mean the instance will never reach ``running``."""

DEAD_STATUSES = frozenset({"exited", "error"})
"""``actual_status`` values of a formerly running host that mean it is gone for good (``offline``/``unknown`` may
recover and get the unreachable grace period; ``stopped`` is an interruptible host's preemption)."""


def onstart_script(public_key: str) -> str:
    """Onstart: no tmux on SSH logins, the run's key in authorized_keys, the container's environment (PATH included:
    non-interactive SSH sessions do not get the image's ENV) in /etc/environment for SSH sessions."""
    template = resources.files(__package__).joinpath("scripts", "onstart.sh").read_text(encoding="utf-8")
    return template.replace("@PUBLIC_KEY@", public_key.replace("'", "").strip())


@dataclass(frozen=True)
class Verdict:
    """What a booting instance's row means: ``wait``, ``ready`` or ``failed`` (with ``reason``)."""

    kind: str
    reason: str = ""


def boot_verdict(instance: Any | None, *, seen_for: float, lag_grace: float, gone: bool) -> Verdict:
    """Judge one booting instance from its latest list row (None: not listed yet). ``seen_for``: seconds since the
    rent; ``gone``: listed before and missing now."""
    if instance is None:
        if gone or seen_for > lag_grace:
            return Verdict("failed", "the instance disappeared while booting")
        return Verdict("wait")
    status = (instance.actual_status or "").lower()
    message = (instance.status_msg or "").lower()
    fatal = next((p for p in FATAL_STATUS_PATTERNS if p in message), None)
    if fatal:
        return Verdict("failed", f"fatal status message {instance.status_msg!r}")
    if status in TERMINAL_BOOT_STATUSES:
        return Verdict("failed", f"instance went to status {status!r} while booting ({instance.status_msg!r})")
    if status == "running" and instance.endpoints:
        return Verdict("ready")
    return Verdict("wait")


def connect(
    instance: Any,
    user: str,
    key: Any,
    host_keys: TofuHostKeys,
    *,
    deadline: float,
    connect_timeout: float,
    retry_interval: float,
    stop: threading.Event,
) -> SshConnection:
    """SSH into a running instance: direct endpoint first, then the proxy, retrying until ``deadline``
    (``time.monotonic()``); raises :class:`~snakemake_executor_plugin_vast.ssh.SshError`."""
    endpoints = [(e.host, int(e.port)) for e in instance.endpoints]
    return connect_first(
        endpoints,
        user,
        key,
        host_keys,
        deadline=max(deadline, time.monotonic() + 5.0),
        connect_timeout=connect_timeout,
        retry_interval=retry_interval,
        stop=stop,
    )
