"""Build a wheel of this code (``density_engine`` + ``snakemake_executor_plugin_vast``) to install on rented hosts.

A tiny, dependency-free, deterministic wheel builder (no hatchling or network needed on the controller). Two sources:

* a **checkout** (an editable install, or running from the repository): the package folders plus ``pyproject.toml``;
  the version is ``<density_engine.__version__>+g<content hash>`` (:func:`density_engine.codeversion.source_version`),
  so any change to the packaged sources gives a new version and a host re-installs exactly when its code differs;
* a **regular install** (``pip install .`` or the host wheel itself, in site-packages): the installed distribution's
  files, ``METADATA`` (requirements) and entry points, read with :mod:`importlib.metadata`; the version is the
  installed one when it already carries a ``+g<hash>`` (a host wheel), else ``<installed version>+g<hash of the
  installed package files>``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
import uuid
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from density_engine import codeversion
from density_engine.codeversion import DIST_NAME, PACKAGES, package_files

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


class WheelSourceError(RuntimeError):
    """Neither a checkout nor an installed distribution of density-engine provides the code to ship."""


@dataclass(frozen=True)
class WheelSource:
    """What goes into the host wheel: package files (archive name → path), version, METADATA lines, entry points."""

    files: dict[str, Path]
    version: str
    summary: str | None
    requires_python: str | None
    requires_dist: list[str]
    console_scripts: dict[str, str]
    origin: str


def project_root() -> Path | None:
    """The checkout the running ``density_engine`` is imported from, or None for a regular (site-packages) install."""
    return codeversion.checkout_root()


def source_version(root: Path | None = None) -> str:
    """The version the wheel of this code gets (see the module docstring)."""
    return wheel_source(root).version


def _checkout_source(root: Path) -> WheelSource:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return WheelSource(
        files={path.relative_to(root).as_posix(): path for path in package_files(root)},
        version=codeversion.source_version(root),
        summary=project.get("description"),
        requires_python=project.get("requires-python"),
        requires_dist=list(project.get("dependencies", [])),
        console_scripts=dict(project.get("scripts", {})),
        origin=f"checkout {root}",
    )


def _installed_source() -> WheelSource:
    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:
        raise WheelSourceError(
            f"cannot build the host wheel: {DIST_NAME} is neither a checkout (no pyproject.toml next to the package) "
            "nor an installed distribution; install it (`pip install -e .` from the checkout) or run from the checkout"
        ) from None
    files = codeversion.installed_package_files(dist)
    missing = [package for package in PACKAGES if f"{package}/__init__.py" not in files]
    if missing:
        raise WheelSourceError(
            f"cannot build the host wheel from the installed {DIST_NAME} {dist.version}: its file list (RECORD) has no "
            f"{', '.join(missing)} package; reinstall it, or use an editable install (`pip install -e .`)"
        )
    version = codeversion.installed_version(dist, files)
    headers = HeaderParser().parsestr(dist.read_text("METADATA") or "")
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    return WheelSource(
        files=files,
        version=version,
        summary=headers.get("Summary"),
        requires_python=headers.get("Requires-Python"),
        requires_dist=list(headers.get_all("Requires-Dist") or []),
        console_scripts=scripts,
        origin=f"installed distribution {DIST_NAME} {dist.version} ({dist.locate_file('')})",
    )


def wheel_source(root: Path | None = None) -> WheelSource:
    """The code to ship: the checkout ``root`` (default: the one this package is imported from), else the installed
    distribution. Raises :class:`WheelSourceError` (a clear message) when neither exists."""
    root = root or project_root()
    return _checkout_source(root) if root is not None else _installed_source()


def _metadata(source: WheelSource) -> tuple[str, str]:
    lines = ["Metadata-Version: 2.1", f"Name: {DIST_NAME}", f"Version: {source.version}"]
    if source.summary:
        lines.append(f"Summary: {source.summary}")
    if source.requires_python:
        lines.append(f"Requires-Python: {source.requires_python}")
    lines += [f"Requires-Dist: {dep}" for dep in source.requires_dist]
    entry_points = "[console_scripts]\n" + "".join(
        f"{name} = {target}\n" for name, target in sorted(source.console_scripts.items())
    )
    return "\n".join(lines) + "\n", entry_points


def build_wheel(out_dir: str | os.PathLike[str], root: Path | None = None) -> Path:
    """Build (or reuse) the host wheel in ``out_dir`` (see :func:`wheel_source`); return its path. Atomic."""
    source = wheel_source(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dist = DIST_NAME.replace("-", "_")
    wheel = out / f"{dist}-{source.version}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    info = f"{dist}-{source.version}.dist-info"
    metadata_text, entry_points = _metadata(source)
    records: list[str] = []
    tmp = out / f".{wheel.name}.{uuid.uuid4().hex[:8]}.tmp"

    def add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
        entry = zipfile.ZipInfo(name, _ZIP_DATE)
        entry.external_attr = 0o644 << 16
        entry.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(entry, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        records.append(f"{name},sha256={digest},{len(data)}")

    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name in sorted(source.files):
                add(zf, name, source.files[name].read_bytes())
            # the commit is not part of the version hash: the same sources give the same version whatever the commit
            add(zf, f"density_engine/{codeversion.GIT_COMMIT_FILE}", (codeversion.git_commit() + "\n").encode())
            add(zf, f"{info}/METADATA", metadata_text.encode())
            add(
                zf,
                f"{info}/WHEEL",
                b"Wheel-Version: 1.0\nGenerator: density-engine\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
            )
            add(zf, f"{info}/entry_points.txt", entry_points.encode())
            records.append(f"{info}/RECORD,,")
            zf.writestr(zipfile.ZipInfo(f"{info}/RECORD", _ZIP_DATE), "\n".join(records) + "\n")
        os.replace(tmp, wheel)
    finally:
        tmp.unlink(missing_ok=True)
    return wheel
