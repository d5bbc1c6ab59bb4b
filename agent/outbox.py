"""The outbox: records the hub has not acknowledged yet, in append-only segment files.

``outbox/<first seq>.jsonl`` in the data directory, one JSON record per line, in sequence
order. A money write appends its record(s) at the end of the newest segment and fsyncs it
*before* the ledger's small live file (``ledger.json``: next sequence number, watermark,
checkpoints, vouchers) is replaced: the live file is the commit. So a write costs one append
and one small atomic replace whatever the backlog, where it used to rewrite every
unacknowledged record.

On start (``load``) the segments are read against the committed state:

- lines with ``seq >= next_seq`` were appended by a write whose commit never happened (a
  crash, a failed replace): the write was never answered, so they are cut off;
- a line torn by a power cut is cut off the same way (only the tail can be torn);
- lines with ``seq <= acked_seq`` are in the archive already (it is appended and fsync'd
  before the watermark moves): they are skipped.

Compaction is only ever the removal of a whole segment whose every record is acknowledged
(so archived durably) and that is no longer written to: there is no rewrite, so no crash
point at which a record exists in neither place. A segment is closed for writes once it
holds ``SEGMENT_BYTES``; the next write starts a new one (created, fsync'd, and its
directory entry fsync'd before the commit that depends on it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from common.durable import fsync_dir

log = logging.getLogger(__name__)

OUTBOX_DIR = "outbox"
# a segment takes no more appends past this size (about 2,500 session records)
SEGMENT_BYTES = 1 << 20
_NAME = re.compile(r"^(\d{12})\.jsonl$")


class _Seq(msgspec.Struct):
    seq: int


_seq_decoder = msgspec.json.Decoder(_Seq)


def segment_name(first_seq: int) -> str:
    return f"{first_seq:012d}.jsonl"


@dataclass
class _Segment:
    path: Path
    first: int
    size: int = 0  # bytes that belong to committed (or being-committed) lines
    last: int = 0  # highest seq in it (0: none)


@dataclass(frozen=True)
class Mark:
    """Where an append started: what ``undo`` goes back to."""

    segment: _Segment
    size: int
    last: int
    created: bool


class Outbox:
    """The unacknowledged records of one data directory (one writer: the ledger)."""

    def __init__(self, data_dir: Path, *, owner: bool = True,
                 segment_bytes: int | None = None) -> None:
        self.dir = Path(data_dir) / OUTBOX_DIR
        self.owner = owner
        self.segment_bytes = SEGMENT_BYTES if segment_bytes is None else segment_bytes
        self._segments: list[_Segment] = []
        self._lines: dict[int, bytes] = {}  # seq -> the record's JSON line (no newline)
        self._lo, self._hi = 1, 0  # the seqs held are within [lo, hi]
        self._fd: int | None = None  # the newest segment, open for appends
        self._fd_path: Path | None = None
        self._tail_dirty = False  # an undo could not truncate: the next append does

    # ---------------------------------------------------------------- start

    def load(self, acked_seq: int, next_seq: int) -> None:
        """Read the segments, keep the unacknowledged committed lines, cut what was not
        committed, drop fully acknowledged segments (only an owner changes files)."""
        self.close()
        self._segments.clear()
        self._lines.clear()
        self._lo, self._hi = acked_seq + 1, acked_seq
        if not self.dir.is_dir():
            return
        found: list[tuple[int, Path]] = []
        for p in self.dir.iterdir():
            m = _NAME.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
            elif self.owner and p.name.startswith(".") and p.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)  # a migration write cut short
        found.sort()
        cut = False  # everything after a cut belongs to a write that was never committed
        for i, (first, path) in enumerate(found):
            newest = i == len(found) - 1
            seg = _Segment(path, first)
            try:
                data = b"" if cut else path.read_bytes()
            except FileNotFoundError:  # compacted away while this reader listed it
                continue
            pos = 0
            while pos < len(data):
                end = data.find(b"\n", pos)
                try:
                    seq = -1 if end < 0 else _seq_decoder.decode(data[pos:end]).seq
                except msgspec.DecodeError:
                    seq = -1
                if seq < 0 and not newest:
                    # only the newest segment takes appends, so only its tail can be torn:
                    # this is damage, not a crash; the line is lost, the others are kept
                    log.error("%s: a damaged line at byte %d is skipped", path, pos)
                    pos = len(data) if end < 0 else end + 1
                    continue
                if seq < 0 or seq >= next_seq:
                    if seq < 0:
                        log.warning("%s: a line torn by a crash at byte %d is dropped (its "
                                    "write was never answered)", path, pos)
                    cut = True
                    break
                if seq > acked_seq:
                    if seq in self._lines:
                        log.error("%s: seq %d appears twice; the first is kept", path, seq)
                    else:
                        self._lines[seq] = data[pos:end]
                        self._hi = max(self._hi, seq)
                seg.last = max(seg.last, seq)
                pos = end + 1
            seg.size = pos
            if self.owner and pos == 0:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)  # nothing committed in it (a write cut short)
                continue
            if self.owner and cut and path.stat().st_size > pos:
                self._truncate(path, pos)
            self._segments.append(seg)
        if len(self._lines) != next_seq - 1 - acked_seq:
            missing = sorted(set(range(acked_seq + 1, next_seq)) - set(self._lines))
            log.error("outbox: %d unacknowledged record(s) missing from %s (first %s)",
                      len(missing), self.dir, missing[:5])
        if self.owner:
            self.compact(acked_seq)

    @staticmethod
    def _truncate(path: Path, size: int) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def adopt(self, records: Iterable[tuple[int, bytes]]) -> None:
        """Hold ``records`` in memory only (a reader of a data dir not migrated yet)."""
        for seq, line in sorted(records):
            self._lines[seq] = line
            self._lo, self._hi = min(self._lo, seq), max(self._hi, seq)

    # ---------------------------------------------------------------- reading

    def __len__(self) -> int:
        return len(self._lines)

    def lines(self, after_seq: int = 0, limit: int | None = None) -> list[bytes]:
        """The JSON lines with seq > after_seq, in sequence order."""
        out: list[bytes] = []
        for seq in range(max(after_seq + 1, self._lo), self._hi + 1):
            if limit is not None and len(out) >= limit:
                break
            line = self._lines.get(seq)
            if line is not None:
                out.append(line)
        return out

    def segment_files(self) -> list[Path]:
        return [s.path for s in self._segments]

    # ---------------------------------------------------------------- writing

    def append(self, lines: list[tuple[int, bytes]]) -> Mark:
        """Write ``lines`` (seq, JSON) at the end of the newest segment and fsync it.

        They are not part of the outbox until ``commit``; ``undo(mark)`` takes them back.
        """
        assert self.owner, "a read-only outbox takes no appends"
        seg = self._segments[-1] if self._segments else None
        created = False
        # a tail an undo could not cut is overwritten by this append: never leave it behind
        if seg is None or seg.size >= self.segment_bytes and not self._tail_dirty:
            seg = self._new_segment(lines[0][0])
            created = True
        mark = Mark(seg, seg.size, seg.last, created)
        fd = self._open(seg)
        payload = b"".join(line + b"\n" for _, line in lines)
        try:
            view = memoryview(payload)
            at = seg.size
            while view:
                n = os.pwrite(fd, view, at)
                view, at = view[n:], at + n
            if self._tail_dirty:
                os.ftruncate(fd, seg.size + len(payload))
            os.fsync(fd)
        except BaseException:
            self.undo(mark)
            raise
        self._tail_dirty = False
        seg.size += len(payload)
        seg.last = lines[-1][0]
        return mark

    def _new_segment(self, first_seq: int) -> _Segment:
        if not self.dir.is_dir():
            os.mkdir(self.dir, 0o700)
            fsync_dir(self.dir.parent)
        path = self.dir / segment_name(first_seq)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size:
                raise OSError(f"{path} exists and is not empty")
        finally:
            os.close(fd)
        fsync_dir(self.dir)  # the new name must survive a power cut before the commit
        seg = _Segment(path, first_seq)
        self._segments.append(seg)
        return seg

    def _open(self, seg: _Segment) -> int:
        if self._fd is not None and self._fd_path == seg.path:
            return self._fd
        self.close()
        self._fd = os.open(seg.path, os.O_RDWR)
        self._fd_path = seg.path
        return self._fd

    def undo(self, mark: Mark) -> None:
        """Take back an append whose commit failed (best effort: ``load`` cuts it anyway)."""
        seg = mark.segment
        seg.size, seg.last = mark.size, mark.last
        try:
            fd = self._open(seg)
            os.ftruncate(fd, mark.size)
            os.fsync(fd)
        except OSError:
            self._tail_dirty = True
            log.warning("%s: could not cut an uncommitted append; the next write will",
                        seg.path)
        if mark.created and mark.size == 0 and self._segments and self._segments[-1] is seg:
            self._segments.pop()
            self.close()
            with contextlib.suppress(OSError):
                os.unlink(seg.path)

    def commit(self, lines: list[tuple[int, bytes]]) -> None:
        """The write that appended ``lines`` is committed: they are in the outbox now."""
        for seq, line in lines:
            if not self._lines:
                self._lo = seq
            self._lines[seq] = line
            self._hi = max(self._hi, seq)

    def drop_through(self, seq: int) -> None:
        """Records up to ``seq`` are acknowledged (archived and committed): forget them,
        and remove the segments that hold nothing else."""
        for s in range(self._lo, min(seq, self._hi) + 1):
            self._lines.pop(s, None)
        self._lo = max(self._lo, seq + 1)
        if self.owner:
            self.compact(seq)

    def compact(self, acked_seq: int) -> int:
        """Remove the segments that only hold acknowledged records and take no more
        appends (the newest takes appends until it is full). Returns how many went."""
        keep: list[_Segment] = []
        for i, seg in enumerate(self._segments):
            newest = i == len(self._segments) - 1
            if seg.last <= acked_seq and (not newest or seg.size >= self.segment_bytes):
                if self._fd_path == seg.path:
                    self.close()
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(seg.path)
            else:
                keep.append(seg)
        gone = len(self._segments) - len(keep)
        self._segments = keep
        return gone

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._fd_path = None


__all__ = ["OUTBOX_DIR", "SEGMENT_BYTES", "Mark", "Outbox", "segment_name"]
