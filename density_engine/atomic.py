"""Atomic file writes: a temp file in the target's folder, then ``os.replace``.

A reader (Snakemake, a merge, a user) therefore sees either the old file or the complete new one, never a partial
file; an interrupted or failing write leaves no temp file behind.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
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


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


class NotWritableError(OSError):
    """An output cannot be written (folder missing and not creatable, not writable, or too little free space); the
    message is one line naming the folder."""


def check_writable(path: str | os.PathLike[str], needed_bytes: int = 0) -> None:
    """Prove that ``path`` can be written before expensive work produces it: its folder exists or can be created, a
    temp file can be created there, and the file system has ``needed_bytes`` free. :class:`NotWritableError` else."""
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NotWritableError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
    try:
        fd, name = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise NotWritableError(f"{folder}: cannot write there ({exc.strerror or exc})") from None
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise NotWritableError(
            f"{folder}: {free / 1e6:,.1f} MB free, writing {path.name} needs about {needed_bytes / 1e6:,.1f} MB"
        )
