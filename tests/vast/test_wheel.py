"""The host wheel can be built from a checkout and from a regular (non-editable) install of density-engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from density_engine.codeversion import PACKAGES, checkout_root, package_files
from density_engine.hostwheel import build_wheel
from tests.vast.conftest import venv_with_wheel

BUILD = (
    "import sys; from density_engine import hostwheel as wheel; "
    "assert wheel.project_root() is None, wheel.project_root(); print(wheel.build_wheel(sys.argv[1]))"
)


def wheel_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def build_in(python: str, out: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``build_wheel(out)`` in another interpreter (where density_engine is an installed copy)."""
    command = [python, "-c", BUILD, str(out)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_wheel_rebuilt_from_an_installed_host_wheel_is_identical(tmp_path: Path) -> None:
    """pip-install the host wheel (a regular install: files in site-packages, no pyproject.toml) and build the host
    wheel from that install: same version, same files, same metadata and entry points."""
    original = build_wheel(tmp_path / "wheels")
    python = venv_with_wheel(original, tmp_path / "venv")
    done = build_in(python, tmp_path / "rebuilt", tmp_path)
    assert done.returncode == 0, done.stderr
    rebuilt = Path(done.stdout.strip())
    assert rebuilt.name == original.name  # same version: a host with the original installed skips the install
    assert wheel_contents(rebuilt) == wheel_contents(original)


def installed_layout(site: Path, version: str) -> Path:
    """What `pip install .` (hatchling) leaves in site-packages: the packages plus a dist-info with METADATA, RECORD
    and entry points, at a plain version without a source hash."""
    root = checkout_root()
    assert root is not None
    for path in package_files(root):
        target = site / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    info = site / f"density_engine-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.3\nName: density-engine\nVersion: {version}\nSummary: test install\n"
        "Requires-Python: >=3.11\nRequires-Dist: click>=8.1\nRequires-Dist: snakemake>=9.27.1,<10\n"
    )
    (info / "entry_points.txt").write_text("[console_scripts]\ndensity-engine = density_engine.cli:main\n")
    files = [p.relative_to(site).as_posix() for p in sorted(site.rglob("*")) if p.is_file()]
    (info / "RECORD").write_text("".join(f"{name},,\n" for name in [*files, f"{info.name}/RECORD"]))
    return site


def test_wheel_from_a_regular_install_without_a_checkout(tmp_path: Path) -> None:
    site = installed_layout(tmp_path / "site", "0.1.0")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    done = build_in(sys.executable, tmp_path / "out", tmp_path, env)
    assert done.returncode == 0, done.stderr
    wheel = Path(done.stdout.strip())
    version = wheel.name.split("-")[1]
    assert re.fullmatch(r"0\.1\.0\+g[0-9a-f]{12}", version), version  # the content hash decides reinstalls
    contents = wheel_contents(wheel)
    for package in PACKAGES:
        assert f"{package}/__init__.py" in contents
    assert contents["density_engine/hostwheel.py"] == (site / "density_engine" / "hostwheel.py").read_bytes()
    metadata = contents[f"density_engine-{version}.dist-info/METADATA"].decode()
    assert f"Version: {version}" in metadata and "Requires-Dist: snakemake>=9.27.1,<10" in metadata
    entry_points = contents[f"density_engine-{version}.dist-info/entry_points.txt"]
    assert b"density-engine = density_engine.cli:main" in entry_points
    # chunks simulated from this install record the same code version as chunks from hosts running its wheel
    code = subprocess.run(
        [sys.executable, "-c", "from density_engine.codeversion import code_version; print(code_version())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert code.stdout.strip() == version
    # any change to the installed code gives another version (so hosts re-install)
    with (site / "density_engine" / "hostwheel.py").open("a") as handle:
        handle.write("# changed\n")
    again = build_in(sys.executable, tmp_path / "out", tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert Path(again.stdout.strip()).name.split("-")[1] != version


def test_install_without_its_files_gives_a_clear_error(tmp_path: Path) -> None:
    """A distribution whose RECORD lists no package files (e.g. a broken install) cannot be shipped: say so."""
    site = installed_layout(tmp_path / "site", "0.1.0")
    info = next(site.glob("*.dist-info"))
    (info / "RECORD").write_text(f"{info.name}/METADATA,,\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)}
    done = build_in(sys.executable, tmp_path / "out", tmp_path, env)
    assert done.returncode != 0
    assert "WheelSourceError" in done.stderr and "editable install" in done.stderr
