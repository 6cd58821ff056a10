"""The wheels rented hosts install: this code (``density_engine``) and the executor plugin.

The vast executor's ``--vast-host-wheels-command`` hook (set in profiles/vast) runs ``density-engine host-wheels``,
which builds both wheels with the plugin's deterministic wheel writer (no build backend or network needed) and prints
their paths. The density-engine wheel comes from one of two sources:

* a **checkout** (an editable install, or running from the repository): the package folders plus ``pyproject.toml``;
  the version is ``<density_engine.__version__>+g<content hash>`` (:func:`density_engine.codeversion.source_version`),
  so any change to the packaged sources gives a new version and a host re-installs exactly when its code differs;
* a **regular install** (``pip install .`` or the host wheel itself, in site-packages): the installed distribution's
  files, ``METADATA`` (requirements) and entry points, read with :mod:`importlib.metadata`; the version is the
  installed one when it already carries a ``+g<hash>`` (a host wheel), else ``<installed version>+g<hash of the
  installed package files>``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from density_engine import codeversion
from density_engine.codeversion import DIST_NAME, PACKAGES, package_files
from snakemake_executor_plugin_vast.wheels import build_self_wheel, write_wheel


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


def build_wheel(out_dir: str | os.PathLike[str], root: Path | None = None) -> Path:
    """Build (or reuse) the density-engine host wheel in ``out_dir`` (see :func:`wheel_source`); return its path.

    Its version is :func:`density_engine.codeversion.code_version` of the same code; the git commit travels in the
    package (``density_engine/_git_commit.txt``), not in the version, so the same sources give the same wheel.
    """
    source = wheel_source(root)
    files: dict[str, Path | bytes] = dict(source.files)
    files[f"density_engine/{codeversion.GIT_COMMIT_FILE}"] = (codeversion.git_commit() + "\n").encode()
    return write_wheel(
        out_dir,
        name=DIST_NAME,
        version=source.version,
        files=files,
        requires=source.requires_dist,
        summary=source.summary,
        requires_python=source.requires_python,
        console_scripts=source.console_scripts,
        generator=DIST_NAME,
    )


def host_wheels(out_dir: str | os.PathLike[str], root: Path | None = None) -> list[Path]:
    """The wheels every host installs: density-engine's and the executor plugin's (it is a dependency)."""
    return [build_wheel(out_dir, root), build_self_wheel(out_dir)]
