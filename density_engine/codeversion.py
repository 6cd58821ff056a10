"""The code version of this installation: ``<__version__>+g<12 hex of the sha256 of the package sources>``.

Recorded in every chunk's metadata (and so in the dataset card), and used as the version of the wheel that the Vast
executor installs on rented hosts (``density_engine.vast.wheel``). A checkout computes it from its files; a host that
installed that wheel reads the same string from the installed distribution's metadata, so a chunk simulated locally
and one simulated remotely from the same sources carry the same code version. Other installs (e.g. ``pip install``
of an sdist) report the plain package version.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path

#: The packages a host wheel contains (and whose sources the version hashes).
PACKAGES = ("density_engine", "snakemake_executor_plugin_vast")
DIST_NAME = "density-engine"


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


@lru_cache(maxsize=1)
def code_version() -> str:
    """This installation's code version (see the module docstring)."""
    root = checkout_root()
    if root is not None:
        return source_version(root)
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:  # pragma: no cover - imported from a copied folder
        from density_engine import __version__

        return __version__
