"""The code version of this installation: ``<__version__>+g<12 hex of the sha256 of the package sources>``.

Recorded in every chunk's metadata (and so in the dataset card), and used as the version of the wheel that the Vast
executor installs on rented hosts (:mod:`density_engine.hostwheel`). A checkout computes it from its files; a host that
installed that wheel reads the same string from the installed distribution's metadata, so a chunk simulated locally
and one simulated remotely from the same sources carry the same code version. A regular install (e.g. ``pip install
.``) hashes its installed package files instead, as the host wheel built from it does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

#: The packages the density-engine host wheel contains (and whose sources the version hashes). The executor plugin is
#: its own distribution (snakemake-executor-plugin-vast) with its own wheel and version; it computes nothing that goes
#: into a chunk, so it is not part of this code version.
PACKAGES = ("density_engine",)
DIST_NAME = "density-engine"
#: Overrides the git commit (e.g. for a build from an exported tree).
GIT_COMMIT_ENV = "DENSITY_ENGINE_GIT_COMMIT"
#: File (inside the package) in which the host wheel carries the git commit of the checkout it was built from.
GIT_COMMIT_FILE = "_git_commit.txt"


def checkout_root() -> Path | None:
    """The source checkout this ``density_engine`` is imported from, or None (an installed copy)."""
    root = Path(__file__).resolve().parents[1]
    if (root / "pyproject.toml").is_file() and all((root / p / "__init__.py").is_file() for p in PACKAGES):
        return root
    return None


def package_files(root: Path) -> list[Path]:
    """The source files of :data:`PACKAGES` under ``root`` (sorted, no bytecode)."""
    files: list[Path] = []
    for package in PACKAGES:
        base = root / package
        if not (base / "__init__.py").is_file():
            raise FileNotFoundError(f"package folder {base} not found (needed to build the host wheel)")
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
                files.append(path)
    return files


def base_version(root: Path) -> str:
    """``__version__`` as written in ``root/density_engine/__init__.py``."""
    for line in (root / "density_engine" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    raise ValueError(f"no __version__ in {root / 'density_engine' / '__init__.py'}")


def source_version(root: Path) -> str:
    """``<base>+g<12 hex of the sha256 over the package files (path + bytes) and pyproject.toml>``."""
    digest = hashlib.sha256()
    for path in package_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update((root / "pyproject.toml").read_bytes())
    return f"{base_version(root)}+g{digest.hexdigest()[:12]}"


def installed_package_files(dist: metadata.Distribution) -> dict[str, Path]:
    """The installed source files of :data:`PACKAGES` of ``dist`` (archive name -> path; no bytecode, and not the git
    commit stamp, which every host wheel gets anew), from the distribution's file list (RECORD)."""
    files: dict[str, Path] = {}
    for entry in dist.files or []:
        parts = entry.parts
        if not parts or parts[0] not in PACKAGES or "__pycache__" in parts or entry.suffix in {".pyc", ".pyo"}:
            continue
        if entry.as_posix() == f"density_engine/{GIT_COMMIT_FILE}":
            continue
        path = Path(str(dist.locate_file(entry)))
        if path.is_file():
            files[entry.as_posix()] = path
    return files


def installed_version(dist: metadata.Distribution, files: dict[str, Path]) -> str:
    """The code version of an installed distribution: its version when it already carries ``+g<hash>`` (a host wheel
    built from a checkout), else ``<version>+g<12 hex of the sha256 over the installed package files>``."""
    if "+g" in dist.version:
        return dist.version
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].read_bytes() + b"\0")
    return f"{dist.version}+g{digest.hexdigest()[:12]}"


@lru_cache(maxsize=1)
def code_version() -> str:
    """This installation's code version (see the module docstring): the version the host wheel built from this same
    code gets (:mod:`density_engine.hostwheel`), for a checkout and for a regular install alike."""
    root = checkout_root()
    if root is not None:
        return source_version(root)
    try:
        dist = metadata.distribution(DIST_NAME)
    except metadata.PackageNotFoundError:  # pragma: no cover - imported from a copied folder
        from density_engine import __version__

        return __version__
    return installed_version(dist, installed_package_files(dist))


def checkout_git_commit(root: Path) -> str:
    """``<40 hex>`` of ``HEAD`` in the git checkout ``root`` (``-dirty`` appended when tracked files differ from it),
    or ``unknown`` when it is not a git checkout or git is missing."""
    try:
        run = {"cwd": root, "capture_output": True, "text": True, "check": True, "timeout": 10}
        commit = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], **run).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "") if commit else "unknown"


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The git commit of this code: ``$DENSITY_ENGINE_GIT_COMMIT``, else the checkout's (see
    :func:`checkout_git_commit`), else the one a host wheel was stamped with, else ``unknown``."""
    override = os.environ.get(GIT_COMMIT_ENV)
    if override:
        return override
    root = checkout_root()
    if root is not None:
        return checkout_git_commit(root)
    stamp = Path(__file__).resolve().parent / GIT_COMMIT_FILE
    return stamp.read_text(encoding="utf-8").strip() if stamp.is_file() else "unknown"
