"""The code version recorded in chunk metadata is the version of the host wheel built from the same sources."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from density_engine import __version__, codeversion
from density_engine import hostwheel as wheel


def test_checkout_code_version_is_the_host_wheel_version(tmp_path: Path) -> None:
    version = codeversion.code_version()
    assert re.fullmatch(rf"{re.escape(__version__)}\+g[0-9a-f]{{12}}", version)
    built = wheel.build_wheel(tmp_path)
    assert built.name.split("-")[1] == version
    with zipfile.ZipFile(built) as zf:
        metadata = zf.read(f"density_engine-{version}.dist-info/METADATA").decode()
    assert f"Version: {version}" in metadata  # what importlib.metadata reports on a host that installed it


def test_source_version_changes_with_any_source_byte(tmp_path: Path) -> None:
    root = codeversion.checkout_root()
    assert root is not None
    copy = tmp_path / "checkout"
    for path in [*codeversion.package_files(root), root / "pyproject.toml"]:
        target = copy / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    assert codeversion.source_version(copy) == codeversion.code_version()
    (copy / "density_engine" / "models" / "base.py").write_text("# changed\n", encoding="utf-8")
    assert codeversion.source_version(copy) != codeversion.code_version()


def test_git_commit_of_the_checkout_travels_in_the_host_wheel(tmp_path: Path) -> None:
    commit = codeversion.git_commit()
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit), commit  # the tests run from a git checkout
    built = wheel.build_wheel(tmp_path)
    with zipfile.ZipFile(built) as zf:
        assert zf.read(f"density_engine/{codeversion.GIT_COMMIT_FILE}").decode().strip() == commit
