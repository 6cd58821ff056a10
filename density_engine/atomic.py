"""Atomic file writes: a temp file in the target's folder, then ``os.replace``.

A reader (Snakemake, a merge, a user) therefore sees either the old file or the complete new one, never a partial
file; an interrupted or failing write leaves no temp file behind.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files that interrupted writes of ``path`` left beside it (a process killed with SIGKILL cannot
    clean up); return them. Only for a path with a single writer at a time (e.g. a Snakemake job's output)."""
    path = Path(path)
    stale = sorted(path.parent.glob(f"{glob.escape(_temp_prefix(path))}*.tmp")) if path.parent.is_dir() else []
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return stale


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, mode: int | None = None, sole_writer: bool = False) -> Iterator[Path]:
    """Yield a temp path beside ``path``; when the block succeeds, fsync it and move it onto ``path``.

    ``mode`` sets the file's permissions (default: the usual ``0o666`` less the umask; ``mkstemp`` creates 0600).
    ``sole_writer``: nobody else writes ``path`` now, so temp files of earlier, killed writes are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if sole_writer:
        remove_stale_temps(path)
    fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
