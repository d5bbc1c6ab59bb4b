"""Durable files: a TinyDB storage that replaces its file atomically, and append-only archives.

A write is ``common.durable.atomic_write_bytes``: a temp file in the same directory, fsync,
``os.replace`` over the old file, fsync of the directory. A kill -9 or a power cut at any
instant leaves either the previous file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from tinydb.storages import Storage

from common import durable
from common.durable import fsync_dir as fsync_dir
from common.durable import temp_path

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class StorageError(RuntimeError):
    """A durable file could not be read or written."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably (``common.durable``), private."""
    durable.atomic_write_bytes(path, data, sync_dir=fsync_dir)


class AtomicJSONStorage(Storage):
    """TinyDB storage: whole-file atomic durable writes, and reads from memory.

    The agent is the only writer of its live file, so the last state written is kept in
    memory and reads cost nothing. If a write fails the cache is dropped, so a caller that
    mutated the dict it read before writing sees the state on disk again, not its change.
    """

    def __init__(self, path: str | Path, *, owner: bool = True) -> None:
        """``owner``: this process is the file's one writer (it may clear a torn temp file)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if owner:
            with contextlib.suppress(FileNotFoundError):
                temp_path(self.path).unlink()  # a write cut short
        self._cache: dict[str, dict[str, Any]] | None = None
        self._loaded = False
        self.writes = 0

    def _load(self) -> dict[str, dict[str, Any]] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        if not raw.strip():
            return None
        try:
            data = _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise StorageError(f"{self.path} is not valid JSON ({exc}); refusing to start "
                               "over it — restore it from a backup") from None
        if not isinstance(data, dict):
            raise StorageError(f"{self.path} does not hold a TinyDB database")
        return data

    def read(self) -> dict[str, dict[str, Any]] | None:
        if not self._loaded:
            self._cache = self._load()
            self._loaded = True
        return self._cache

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        try:
            atomic_write_bytes(self.path, _encoder.encode(data))
        except BaseException:
            self.invalidate()
            raise
        self._cache = data
        self._loaded = True
        self.writes += 1

    def invalidate(self) -> None:
        """Forget the in-memory copy; the next read comes from disk."""
        self._cache = None
        self._loaded = False

    def close(self) -> None:
        self.invalidate()


def append_lines_durable(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Append JSON lines to ``path`` and fsync it (and its directory if it is new)."""
    payload = b"".join(_encoder.encode(r) + b"\n" for r in records)
    if not payload:
        return
    new = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            payload = b"\n" + payload  # close a line torn by a crash, so this one stays whole
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        fsync_dir(path.parent)


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file; a line torn by a crash is skipped (and logged)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    bad = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            obj = _decoder.decode(line)
        except msgspec.DecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            yield obj
        else:
            bad += 1
    if bad:
        log.warning("%s: skipped %d damaged line(s)", path, bad)
