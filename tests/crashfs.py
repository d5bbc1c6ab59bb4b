"""A crash simulator for durable-file code: record every file-system step, replay crashes.

``Recorder`` stands in for the ``os`` module of the modules that write the ledger's files
(``agent.storage``, ``common.durable``, ``agent.outbox``, ``agent.ledger``): every call goes
to the real ``os``; the ones that change files (open with create/truncate, write, pwrite,
ftruncate, fsync, rename/replace, unlink, mkdir) are also logged, in order.

``Model`` replays such a log over a snapshot of the directory taken before it, keeping two
states per file and directory, as a power cut sees them:

- a file's *volatile* bytes (what the process wrote) and *durable* bytes (as of its last
  fsync);
- a directory's volatile entries (creates, renames, unlinks done) and durable entries (as
  of its last fsync).

``Model.crash(mode)`` is the directory a crash after the steps replayed so far can leave:

- ``kill``: the process died (kill -9), the kernel kept everything it was given;
- ``power``: power cut, the pessimistic POSIX reading: only what was fsync'd, names only
  if their directory was fsync'd;
- ``names``: power cut where every name change reached the disk but no un-fsync'd data
  did (a rename can land before the data it points to);
- ``torn``: ``power``, plus half of every un-fsync'd append (a torn last write).

It is a model, not a file system: one process, no hard links, no mmap.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MODES = ("kill", "power", "names", "torn")

Op = tuple[Any, ...]


class Recorder:
    """A stand-in ``os`` module that logs the changing calls under ``root``."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self.ops: list[Op] = []
        self._known: set[int] = set()

    # everything not overridden is the real os (constants, stat, fstat, pread, ...)
    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _rel(self, path: Any) -> str | None:
        p = Path(os.fsdecode(path))
        p = p if p.is_absolute() else Path.cwd() / p
        try:
            return str(p.resolve(strict=False).relative_to(self._root))
        except ValueError:
            return None

    def _fd(self, fd: int) -> bool:
        """True if ``fd`` is a file under root; logs it the first time it is seen."""
        if fd in self._known:
            return True
        rel = self._rel(os.readlink(f"/proc/self/fd/{fd}"))
        if rel is None:
            return False
        append = bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
        self.ops.append(("adopt", fd, rel, append))
        self._known.add(fd)
        return True

    def open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None
             ) -> int:
        assert dir_fd is None
        fd = os.open(path, flags, mode)
        rel = self._rel(path)
        if rel is not None:
            self.ops.append(("open", fd, rel, flags))
            self._known.add(fd)
        return fd

    def close(self, fd: int) -> None:
        os.close(fd)
        if fd in self._known:
            self._known.discard(fd)
            self.ops.append(("close", fd))

    def write(self, fd: int, data: Any) -> int:
        n = os.write(fd, data)
        if self._fd(fd):
            self.ops.append(("write", fd, bytes(data[:n])))
        return n

    def pwrite(self, fd: int, data: Any, offset: int) -> int:
        n = os.pwrite(fd, data, offset)
        if self._fd(fd):
            self.ops.append(("pwrite", fd, bytes(data[:n]), offset))
        return n

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)
        if self._fd(fd):
            self.ops.append(("truncate", fd, size))

    def fsync(self, fd: Any) -> None:
        os.fsync(fd)
        if isinstance(fd, int) and self._fd(fd):
            self.ops.append(("fsync", fd))

    fdatasync = fsync

    def replace(self, src: Any, dst: Any, **kw: Any) -> None:
        os.replace(src, dst, **kw)
        a, b = self._rel(src), self._rel(dst)
        if a is not None and b is not None:
            self.ops.append(("rename", a, b))

    rename = replace

    def unlink(self, path: Any, **kw: Any) -> None:
        os.unlink(path, **kw)
        rel = self._rel(path)
        if rel is not None:
            self.ops.append(("unlink", rel))

    remove = unlink

    def mkdir(self, path: Any, mode: int = 0o777, **kw: Any) -> None:
        os.mkdir(path, mode, **kw)
        rel = self._rel(path)
        if rel is not None:
            self.ops.append(("mkdir", rel))

    def steps(self) -> list[Op]:
        """The steps a crash can fall between (open/close/adopt change nothing durable but
        are kept for the replay)."""
        return self.ops


def record(monkeypatch: pytest.MonkeyPatch, root: Path, modules: list[ModuleType]) -> Recorder:
    """Install a ``Recorder`` as the ``os`` of ``modules``."""
    rec = Recorder(root)
    for m in modules:
        monkeypatch.setattr(m, "os", rec)
    return rec


@dataclass
class File:
    vol: bytearray
    dur: bytes


@dataclass
class Dir:
    vol: dict[str, Node] = field(default_factory=dict)
    dur: dict[str, Node] = field(default_factory=dict)


Node = File | Dir


def snapshot(root: Path) -> Dir:
    """The directory as it is, all of it durable."""
    d = Dir()
    for p in sorted(root.iterdir()):
        node: Node = snapshot(p) if p.is_dir() else File(bytearray(p.read_bytes()),
                                                         p.read_bytes())
        d.vol[p.name] = d.dur[p.name] = node
    return d


class Model:
    def __init__(self, root: Path) -> None:
        self.top = snapshot(root)
        self.fds: dict[int, tuple[Node, bool]] = {}
        self.pos: dict[int, int] = {}

    def _parent(self, rel: str) -> tuple[Dir, str]:
        parts = Path(rel).parts
        d = self.top
        for name in parts[:-1]:
            nxt = d.vol[name]
            assert isinstance(nxt, Dir), rel
            d = nxt
        return d, parts[-1]

    def _node(self, rel: str) -> Node:
        if rel in ("", "."):
            return self.top
        d, name = self._parent(rel)
        return d.vol[name]

    def apply(self, op: Op) -> None:
        kind = op[0]
        if kind == "adopt":
            _, fd, rel, append = op
            self.fds[fd] = (self._node(rel), append)
            self.pos[fd] = 0
        elif kind == "open":
            _, fd, rel, flags = op
            if rel in ("", "."):
                node: Node = self.top
            else:
                d, name = self._parent(rel)
                if name not in d.vol:
                    assert flags & os.O_CREAT, f"open of a missing {rel}"
                    d.vol[name] = File(bytearray(), b"")
                node = d.vol[name]
            if flags & os.O_TRUNC and isinstance(node, File):
                node.vol = bytearray()
            self.fds[fd] = (node, bool(flags & os.O_APPEND))
            self.pos[fd] = 0
        elif kind == "close":
            self.fds.pop(op[1], None)
        elif kind in ("write", "pwrite"):
            fd, data = op[1], op[2]
            node, append = self.fds[fd]
            assert isinstance(node, File)
            if kind == "pwrite":
                at = op[3]
            else:
                at = len(node.vol) if append else self.pos[fd]
                self.pos[fd] = at + len(data)
            if len(node.vol) < at:
                node.vol.extend(b"\0" * (at - len(node.vol)))
            node.vol[at:at + len(data)] = data
        elif kind == "truncate":
            node, _ = self.fds[op[1]]
            assert isinstance(node, File)
            size = op[2]
            del node.vol[size:]
            node.vol.extend(b"\0" * (size - len(node.vol)))
        elif kind == "fsync":
            node, _ = self.fds[op[1]]
            if isinstance(node, File):
                node.dur = bytes(node.vol)
            else:
                node.dur = dict(node.vol)
        elif kind == "rename":
            sd, sn = self._parent(op[1])
            dd, dn = self._parent(op[2])
            dd.vol[dn] = sd.vol.pop(sn)
        elif kind == "unlink":
            d, name = self._parent(op[1])
            del d.vol[name]
        elif kind == "mkdir":
            d, name = self._parent(op[1])
            d.vol[name] = Dir()
        else:
            raise AssertionError(f"unknown step {op!r}")

    def crash(self, mode: str, dest: Path) -> Path:
        """Write the directory a crash in ``mode`` leaves now into ``dest``."""
        assert mode in MODES
        if dest.exists():
            shutil.rmtree(dest)
        self._write(self.top, dest, mode)
        return dest

    def _write(self, d: Dir, dest: Path, mode: str) -> None:
        dest.mkdir(parents=True)
        entries = d.vol if mode in ("kill", "names") else d.dur
        for name, node in entries.items():
            if isinstance(node, Dir):
                self._write(node, dest / name, mode)
                continue
            if mode == "kill":
                data = bytes(node.vol)
            elif mode == "torn" and node.vol[:len(node.dur)] == node.dur:
                extra = len(node.vol) - len(node.dur)
                data = bytes(node.vol[:len(node.dur) + extra // 2])
            else:
                data = node.dur
            (dest / name).write_bytes(data)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), to compare directories."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def crash_points(model: Model, ops: list[Op], scratch: Path
                 ) -> Iterator[tuple[int, str, Path]]:
    """(steps replayed, mode, directory) for a crash after every prefix of ``ops``, in every
    mode, replayed over ``model`` (the snapshot taken before the steps). Directories seen
    already are skipped, except after the last step (where the answered write is checked)."""
    seen: set[tuple[bool, tuple[tuple[str, bytes], ...]]] = set()
    for k in range(len(ops) + 1):
        if k:
            model.apply(ops[k - 1])
        for mode in MODES:
            dest = model.crash(mode, scratch / "crash")
            key = (k == len(ops), tuple(sorted(tree(dest).items())))
            if key in seen:
                continue
            seen.add(key)
            yield k, mode, dest


__all__ = ["MODES", "Model", "Recorder", "crash_points", "record", "snapshot", "tree"]
