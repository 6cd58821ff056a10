"""The Python environment of a host: find the image's python, build the run's venv on it, install what is missing.

* **Finding python** (``scripts/probe.sh``): non-interactive SSH sessions do not get the image's ``ENV PATH``, so the
  PATH of the container's init (``/proc/1/environ``) and of a login shell are searched before the session's own;
  ``--vast-remote-python`` may be a name (``python3``) or a path.
* **The venv** (``scripts/make_venv.sh``): ``<remote root>/venv`` is created with ``--system-site-packages`` from that
  python. When that python is itself a venv (Vast's current images keep PyTorch in ``/venv/main``), its site-packages
  are chained into ours with a ``.pth`` file: a venv created from a venv only sees the *base* interpreter's packages,
  and the image's torch would otherwise be invisible (and pip-installed again, 1.8 GB, possibly for the wrong CUDA).
* **Installing** (:func:`requirements_plan`): the host wheels are unpacked into the venv (no pip, no network); a
  requirement the host environment already satisfies is left alone (the image's torch is used, never replaced); a
  missing or unsatisfied one is pip-installed at the controller's version (``name==<version>``, local labels such as
  ``+cpu`` dropped), with a constraints file that pins every other package the host already has to its installed
  version and every package only the controller has to the controller's version, so pip neither upgrades the image's
  packages nor picks versions the controller never ran. Snakemake must equal the controller's version.
* When pip fails, the error names pip's ``ERROR:`` lines, not the tail of its warnings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata, resources
from typing import Any

from snakemake_executor_plugin_vast.ssh import SshConnection, quote_command
from snakemake_executor_plugin_vast.wheels import WheelInfo, normalize_name

MIN_PYTHON = (3, 11)


class HostSetupError(Exception):
    """A host cannot run the jobs. The message never names the host (the caller adds it), so the same problem on two
    machines gives the same text (see :func:`snakemake_executor_plugin_vast.health.fingerprint`)."""


def script(name: str) -> str:
    """The text of a remote script shipped as package data (``scripts/<name>``)."""
    return resources.files(__package__).joinpath("scripts", name).read_text(encoding="utf-8")


@dataclass
class Probe:
    """What ``probe.sh`` found: the python used, whether it is the run's venv, and its environment."""

    python: str
    in_venv: bool
    py: tuple[int, int]
    is_venv: bool
    site: list[str]
    installed: dict[str, str]
    missing: list[str]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def probe(conn: SshConnection, remote_python: str, venv: str, dists: Sequence[str]) -> Probe:
    """Find and probe the python (the run's venv when it exists, else ``remote_python`` on the image's PATH)."""
    arg = json.dumps({"dists": sorted(dists)})
    command = f"bash -c {quote_command([script('probe.sh')])} probe {quote_command([remote_python, venv, arg])}"
    result = conn.exec(command, timeout=180, stdin=script("probe.py").encode())
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    head = next((line for line in lines if line.startswith(("PYTHON ", "NOPYTHON"))), None)
    if head is None or head.startswith("NOPYTHON"):
        searched = head.split(" ", 1)[1] if head and " " in head else "?"
        raise HostSetupError(
            f"remote python {remote_python!r} not found (searched the image's PATH, a login shell's and the SSH "
            f"session's: {searched}); set --vast-remote-python to the image's python"
        )
    _, python, where = [*head.split(" ", 2), "", ""][:3]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        detail = (result.stdout + result.stderr).strip()[-600:]
        raise HostSetupError(f"remote python {python!r} does not run the probe: {detail}") from None
    found = tuple(answer.get("py", (0, 0)))[:2]
    if found < MIN_PYTHON:
        raise HostSetupError(f"remote python {python!r} is {'.'.join(map(str, found))}; the jobs need >= 3.11")
    return Probe(
        python=python,
        in_venv=where == "venv",
        py=(int(found[0]), int(found[1])),
        is_venv=bool(answer.get("venv")),
        site=list(answer.get("site") or []),
        installed={normalize_name(k): str(v) for k, v in (answer.get("installed") or {}).items()},
        missing=list(answer.get("missing") or []),
        raw=answer,
    )


def make_venv(conn: SshConnection, image: Probe, venv: str) -> None:
    """Create the run's venv from the image's python, chaining a venv python's site-packages (module docstring)."""
    chained = image.site if image.is_venv else []
    command = (
        f"bash -c {quote_command([script('make_venv.sh')])} make_venv {quote_command([image.python, venv, *chained])}"
    )
    result = conn.exec(command, timeout=300)
    if not result.ok or "VENV " not in result.stdout:
        raise HostSetupError(f"creating the venv {venv} with {image.python} failed: {_tail(result)}")


def install_wheels(conn: SshConnection, venv_python: str, remote_wheels: Sequence[str]) -> None:
    """Unpack wheels into the venv (``scripts/install_wheels.py``: no pip, no network)."""
    if not remote_wheels:
        return
    result = conn.exec(quote_command([venv_python, "-c", script("install_wheels.py"), *remote_wheels]), timeout=600)
    if not result.ok:
        names = ", ".join(w.rsplit("/", 1)[-1] for w in remote_wheels)
        raise HostSetupError(f"installing {names} failed: {_tail(result)}")


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]


def _requirement_name(requirement: str) -> str:
    return normalize_name(re.split(r"[\s;<>=!~\[(@]", requirement.strip(), maxsplit=1)[0])


def controller_versions(wheels: Iterable[WheelInfo], extra: Iterable[str] = ("snakemake",)) -> dict[str, str]:
    """Versions (local labels dropped) of everything the wheels need, transitively, as installed on this controller
    (markers evaluated here), plus ``extra`` names."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pragma: no cover - packaging comes with pip and snakemake
        return {}
    shipped = {w.key for w in wheels}
    pending = [Requirement(r) for w in wheels for r in w.requires] + [Requirement(name) for name in extra]
    versions: dict[str, str] = {}
    while pending:
        req = pending.pop()
        name = normalize_name(req.name)
        if name in versions or name in shipped:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        versions[name] = _base_version(dist.version)
        pending.extend(Requirement(line) for line in dist.requires or [])
    return versions


def requirements_plan(
    missing: Sequence[str],
    controller: Mapping[str, str],
    host_installed: Mapping[str, str],
    *,
    shipped: Iterable[str],
    snakemake_version: str | None,
) -> tuple[list[str], list[str]]:
    """(requirements to pip-install, constraint lines) for the unmet ``missing`` requirements (module docstring)."""
    shipped = {normalize_name(n) for n in shipped}
    install: dict[str, str] = {}
    for requirement in missing:
        name = _requirement_name(requirement)
        if name in shipped:
            continue
        install[name] = f"{name}=={controller[name]}" if name in controller else requirement
    if snakemake_version and _base_version(host_installed.get("snakemake", "")) != snakemake_version:
        install["snakemake"] = f"snakemake=={snakemake_version}"
    if not install:
        return [], []
    constraints = {name: version for name, version in controller.items() if name not in shipped}
    for name, version in host_installed.items():
        if name not in install and name not in shipped:
            constraints[name] = _base_version(version)  # what the image has stays as it is
    for name, requirement in install.items():
        if "==" in requirement:
            constraints[name] = requirement.split("==", 1)[1]
        else:
            constraints.pop(name, None)
    lines = [f"{name}=={version}" for name, version in sorted(constraints.items())]
    return sorted(install.values()), lines


def pip_install(
    conn: SshConnection, venv_python: str, requirements: Sequence[str], constraints: Sequence[str], remote_dir: str
) -> None:
    """pip-install ``requirements`` into the venv under ``constraints``; a failure names pip's ERROR lines."""
    constraints_path = f"{remote_dir}/constraints.txt"
    conn.put_bytes(("\n".join(constraints) + "\n").encode(), constraints_path, mode=0o644)
    ensure = f"{quote_command([venv_python, '-m', 'pip', '--version'])} > /dev/null 2>&1 || " + quote_command(
        [venv_python, "-m", "ensurepip", "--default-pip"]
    )
    pip = quote_command(
        [venv_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
         "-c", constraints_path, *requirements]
    )  # fmt: skip
    result = conn.exec(f"{{ {ensure}; }} > /dev/null 2>&1; {pip} 2>&1", timeout=3600)
    if not result.ok:
        raise HostSetupError(
            f"pip install {' '.join(requirements)} failed: {pip_errors(result.stdout + result.stderr)}"
        )


def pip_errors(output: str, *, context: int = 6) -> str:
    """pip's ``ERROR:`` lines (and what follows each, up to ``context`` lines), else the last lines of its output."""
    lines = output.strip().splitlines()
    picked: list[str] = []
    for index, line in enumerate(lines):
        if line.startswith("ERROR:"):
            picked.extend(lines[index : index + context])
    if not picked:
        picked = lines[-12:]
    text = "\n".join(dict.fromkeys(picked))
    return text[-3000:]


def disk_report(conn: SshConnection, folder: str) -> str:
    """``"<folder>: 100% used, 0.0 MB free"`` for the folder's file system, or "" when that cannot be read."""
    try:
        result = conn.exec(f"bash -c {quote_command([script('diagnose_disk.sh')])} disk {quote_command([folder])}")
        used, free_kib = result.stdout.split()[:2]
        return f"{folder}: {used} used, {int(free_kib) / 1024:.1f} MB free"
    except Exception:
        return ""


def _tail(result: Any, limit: int = 1500) -> str:
    return (result.stderr.strip() or result.stdout.strip())[-limit:]
