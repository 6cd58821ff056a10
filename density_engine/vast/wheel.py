"""Build a wheel of this checkout (``density_engine`` + ``snakemake_executor_plugin_vast``) to install on rented hosts.

A tiny, dependency-free, deterministic wheel builder (no hatchling or network needed on the controller). The
wheel's version is ``<density_engine.__version__>+g<content hash>``: any change to the packaged sources gives a new
version, so a host re-installs exactly when its installed code differs from this checkout.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tomllib
import uuid
import zipfile
from pathlib import Path

from density_engine import codeversion
from density_engine.codeversion import DIST_NAME, package_files

_ZIP_DATE = (2020, 1, 1, 0, 0, 0)


def project_root() -> Path:
    """The checkout the running ``density_engine`` is imported from."""
    return Path(__file__).resolve().parents[2]


def source_version(root: Path | None = None) -> str:
    """The version the wheel of this checkout gets: ``<base>+g<12 hex of the sources' sha256>``."""
    return codeversion.source_version(root or project_root())


def _metadata(root: Path, version: str) -> tuple[str, str]:
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = ["Metadata-Version: 2.1", f"Name: {DIST_NAME}", f"Version: {version}"]
    if "description" in project:
        lines.append(f"Summary: {project['description']}")
    if "requires-python" in project:
        lines.append(f"Requires-Python: {project['requires-python']}")
    lines += [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    scripts = project.get("scripts", {})
    entry_points = "[console_scripts]\n" + "".join(f"{name} = {target}\n" for name, target in scripts.items())
    return "\n".join(lines) + "\n", entry_points


def build_wheel(out_dir: str | os.PathLike[str], root: Path | None = None) -> Path:
    """Build (or reuse) the wheel of the checkout in ``out_dir``; return its path. Written atomically."""
    root = root or project_root()
    version = source_version(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dist = DIST_NAME.replace("-", "_")
    wheel = out / f"{dist}-{version}-py3-none-any.whl"
    if wheel.is_file():
        return wheel
    info = f"{dist}-{version}.dist-info"
    metadata, entry_points = _metadata(root, version)
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
            for path in package_files(root):
                add(zf, path.relative_to(root).as_posix(), path.read_bytes())
            # the commit is not part of the version hash: the same sources give the same version whatever the commit
            add(zf, f"density_engine/{codeversion.GIT_COMMIT_FILE}", (codeversion.git_commit() + "\n").encode())
            add(zf, f"{info}/METADATA", metadata.encode())
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
