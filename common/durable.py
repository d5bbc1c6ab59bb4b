"""The atomic durable write: a temp file in the same directory, fsync, ``os.replace``, fsync
of the directory. A kill -9 or a power cut at any instant leaves either the previous file or
the new one, never a torn one (DESIGN, principle 1)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

SECRET_MODE = 0o600


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path, tag: str = "") -> Path:
    """The temp file a write of ``path`` goes through (``.NAME[.TAG].tmp`` beside it)."""
    return path.with_name(f".{path.name}.{tag}.tmp" if tag else f".{path.name}.tmp")


def atomic_write_bytes(path: Path, data: bytes | str, *, mode: int = SECRET_MODE,
                       owner: tuple[int, int] | None = None, tag: str = "",
                       sync_dir: Callable[[Path], None] = fsync_dir) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    The file has ``mode`` (whatever the umask) and, with ``owner``, that ``(uid, gid)`` from
    before it appears under its name. ``tag`` keeps the temp files of several writer
    processes apart; ``sync_dir`` makes the rename durable (a caller's seam for tests). A
    write that fails leaves no temp file behind; one that fails in ``sync_dir`` has landed.
    """
    raw = data.encode() if isinstance(data, str) else data
    tmp = temp_path(path, tag)
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a write cut short; O_EXCL below then refuses anything planted there
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            view = memoryview(raw)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fchmod(fd, mode)  # the umask may have narrowed it
            if owner is not None:
                os.fchown(fd, *owner)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    sync_dir(path.parent)
