"""Wheels for the hosts: a deterministic wheel writer, wheel metadata, and this plugin's own wheel.

* :func:`write_wheel` writes a pure-Python ``py3-none-any`` wheel from files in memory or on disk, byte-for-byte the
  same for the same input (fixed timestamps and order), atomically, without a build backend or network;
* :func:`read_wheel` reads a wheel's distribution name, version and requirements (what a host needs besides it);
* :func:`build_self_wheel` builds the wheel of the installed ``snakemake_executor_plugin_vast`` (checkout, editable or
  regular install alike), at version ``<__version__>+g<12 hex of the package files' hash>``, so a host re-installs
  exactly when the plugin's code differs.

Workflows add their own code with the ``--vast-host-wheels-command`` hook (a command that prints wheel paths); they
can use :func:`write_wheel` for that and :func:`build_self_wheel` to ship the plugin too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import subprocess
import tomllib
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from snakemake_executor_plugin_vast.atomic import atomic_path

ZIP_DATE = (2020, 1, 1, 0, 0, 0)
PLUGIN_DIST = "snakemake-executor-plugin-vast"
PLUGIN_PACKAGE = "snakemake_executor_plugin_vast"


class WheelError(RuntimeError):
    """A wheel cannot be built or read; the message names the file or package."""


def normalize_name(name: str) -> str:
    """PEP 503 normalized distribution name (``Snakemake_Executor.Plugin`` → ``snakemake-executor-plugin``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class WheelInfo:
    """What a host needs to know about one wheel: file, distribution name and version, its requirements."""

    path: Path
    name: str
    version: str
    requires: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        """Normalized distribution name."""
        return normalize_name(self.name)


def read_wheel(path: str | os.PathLike[str]) -> WheelInfo:
    """Name, version and ``Requires-Dist`` of a wheel file (raises WheelError naming the file)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise WheelError(f"{path}: expected one *.dist-info/METADATA, found {len(names)}")
            headers = HeaderParser().parsestr(zf.read(names[0]).decode("utf-8"))
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise WheelError(f"{path}: not a readable wheel ({exc})") from exc
    name, version = headers.get("Name"), headers.get("Version")
    if not name or not version:
        raise WheelError(f"{path}: METADATA has no Name/Version")
    return WheelInfo(path, name, version, tuple(headers.get_all("Requires-Dist") or ()))


def write_wheel(
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    version: str,
    files: Mapping[str, Path | bytes],
    requires: Sequence[str] = (),
    summary: str | None = None,
    requires_python: str | None = None,
    console_scripts: Mapping[str, str] | None = None,
    generator: str = PLUGIN_DIST,
) -> Path:
    """Write (or reuse, when the file exists) ``<name>-<version>-py3-none-any.whl`` in ``out_dir``; return its path.

    ``files`` maps archive names (``package/module.py``) to a local path or bytes. Deterministic and atomic.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dist = re.sub(r"[-_.]+", "_", name)
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    info = f"{dist}-{version}.dist-info"
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary:
        lines.append(f"Summary: {summary}")
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {req}" for req in requires]
    entry_points = "[console_scripts]\n" + "".join(
        f"{script} = {target}\n" for script, target in sorted((console_scripts or {}).items())
    )
    records: list[str] = []

    def add(zf: zipfile.ZipFile, arcname: str, data: bytes) -> None:
        entry = zipfile.ZipInfo(arcname, ZIP_DATE)
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(entry, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{arcname},sha256={digest},{len(data)}")

    with atomic_path(wheel) as tmp, zipfile.ZipFile(tmp, "w") as zf:
        for arcname in sorted(files):
            source = files[arcname]
            add(zf, arcname, source if isinstance(source, bytes) else Path(source).read_bytes())
        add(zf, f"{info}/METADATA", ("\n".join(lines) + "\n").encode())
        wheel_text = f"Wheel-Version: 1.0\nGenerator: {generator}\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        add(zf, f"{info}/WHEEL", wheel_text.encode())
        add(zf, f"{info}/entry_points.txt", entry_points.encode())
        records.append(f"{info}/RECORD,,")
        zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", ZIP_DATE), "\n".join(records) + "\n")
    return wheel


def source_files(package_dir: Path, arc_prefix: str) -> dict[str, Path]:
    """The files of a package folder (no bytecode or caches), as archive name → path."""
    files: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
            files[f"{arc_prefix}/{path.relative_to(package_dir).as_posix()}"] = path
    return files


def content_hash(files: Mapping[str, Path], extra: bytes = b"") -> str:
    """12 hex of the sha256 over the (archive name, bytes) pairs, sorted by name."""
    digest = hashlib.sha256()
    for arcname in sorted(files):
        digest.update(arcname.encode() + b"\0" + files[arcname].read_bytes() + b"\0")
    digest.update(extra)
    return digest.hexdigest()[:12]


def _plugin_metadata(package_dir: Path) -> tuple[list[str], str | None, str | None]:
    """Requires-Dist, Summary and Requires-Python of the plugin: from its pyproject.toml when the package sits in its
    project folder (a checkout or an editable install), else from the installed distribution."""
    pyproject = package_dir.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if normalize_name(project.get("name", "")) == PLUGIN_DIST:
            return list(project.get("dependencies", [])), project.get("description"), project.get("requires-python")
    try:
        dist = metadata.distribution(PLUGIN_DIST)
    except metadata.PackageNotFoundError:
        raise WheelError(
            f"cannot build the {PLUGIN_DIST} wheel: {package_dir} has no pyproject.toml beside it and the "
            "distribution is not installed"
        ) from None
    headers = HeaderParser().parsestr(dist.read_text("METADATA") or "")
    return list(headers.get_all("Requires-Dist") or []), headers.get("Summary"), headers.get("Requires-Python")


def self_wheel_version() -> str:
    """``<__version__>+g<hash of the package files>`` of the plugin as installed here."""
    from snakemake_executor_plugin_vast import __version__

    package_dir = Path(__file__).resolve().parent
    return f"{__version__}+g{content_hash(source_files(package_dir, PLUGIN_PACKAGE))}"


def build_self_wheel(out_dir: str | os.PathLike[str]) -> Path:
    """Build (or reuse) the wheel of this plugin as installed here (see the module docstring); return its path."""
    package_dir = Path(__file__).resolve().parent
    files = source_files(package_dir, PLUGIN_PACKAGE)
    requires, summary, requires_python = _plugin_metadata(package_dir)
    return write_wheel(
        out_dir,
        name=PLUGIN_DIST,
        version=self_wheel_version(),
        files=files,
        requires=requires,
        summary=summary,
        requires_python=requires_python,
    )


def host_wheels(command: str | None, cwd: Path, *, timeout: float = 900.0) -> list[WheelInfo]:
    """Run the ``--vast-host-wheels-command`` (shell, in ``cwd``) and read the wheels it prints, one path per line
    (relative paths are taken from ``cwd``; other output lines are ignored). None: no wheels. Raises WheelError with
    the command's error output when it fails or prints no wheel."""
    if not command or not command.strip():
        return []
    try:
        done = subprocess.run(
            command, shell=True, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise WheelError(f"--vast-host-wheels-command {shlex.quote(command)} could not run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise WheelError(f"--vast-host-wheels-command {shlex.quote(command)} exited {done.returncode}:\n{tail}")
    paths = [cwd / line.strip() for line in done.stdout.splitlines() if line.strip().endswith(".whl")]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing or not paths:
        raise WheelError(
            f"--vast-host-wheels-command {shlex.quote(command)} printed "
            + (f"wheel paths that do not exist: {', '.join(missing)}" if missing else "no wheel path (*.whl)")
        )
    wheels = [read_wheel(p) for p in paths]
    names = [w.key for w in wheels]
    if len(set(names)) != len(names):
        raise WheelError(f"--vast-host-wheels-command printed several wheels of one distribution: {names}")
    return wheels
