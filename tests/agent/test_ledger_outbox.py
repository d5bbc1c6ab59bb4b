"""The outbox segments (agent/outbox.py): a write's cost does not grow with the backlog,
uncommitted or torn tails are cut on start, compaction only removes acknowledged segments,
old ``ledger.json`` outbox tables are migrated, and kill -9 of a real writer (also in the
middle of a compaction) loses nothing."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest
from ledger_support import CAC, CASABLANCA, checkpoint, reopen, run_session, session_record

from agent.ledger import ARCHIVE_DIR, LEDGER_FILE, Ledger
from agent.outbox import OUTBOX_DIR
from agent.storage import read_lines

LEGACY = Path(__file__).parent / "data" / "ledger-v1"
WORKER = Path(__file__).parent / "ledger_worker.py"


def segments(led: Ledger) -> list[Path]:
    return sorted((led.data_dir / OUTBOX_DIR).glob("*.jsonl"))


def archived_seqs(data_dir: Path) -> list[int]:
    return sorted(r["seq"] for p in (data_dir / ARCHIVE_DIR).glob("*.jsonl")
                  for r in read_lines(p))


class Spy:
    """Counts fsyncs and bytes written while installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fsyncs = 0
        self.written = 0
        real_fsync, real_write, real_pwrite = os.fsync, os.write, os.pwrite

        def fsync(fd: Any) -> None:
            self.fsyncs += 1
            real_fsync(fd)

        def write(fd: int, data: Any) -> int:
            n = real_write(fd, data)
            self.written += n
            return n

        def pwrite(fd: int, data: Any, offset: int) -> int:
            n = real_pwrite(fd, data, offset)
            self.written += n
            return n

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "pwrite", pwrite)


# ---------------------------------------------------------------- cost per write


def test_a_money_write_costs_three_fsyncs_and_the_same_bytes_at_any_backlog(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    def one_close() -> tuple[int, int]:
        cp = checkpoint("s1")
        ledger.start_session(cp)
        spy = Spy(monkeypatch)
        ledger.close_session(session_record(cp))
        monkeypatch.undo()
        return spy.fsyncs, spy.written

    run_session(ledger)  # the first write creates the first segment (one directory fsync more)
    empty = one_close()
    def backlog(data: dict[str, Any]) -> None:  # 3,000 closes in one write, to be quick
        for _ in range(3000):
            ledger._append(data, session_record(checkpoint("s1")))

    ledger._commit(backlog)
    assert ledger.backlog() == 3002
    full = one_close()
    assert empty[0] == full[0] == 3  # segment append, temp file, directory of the rename
    assert abs(full[1] - empty[1]) < 16, (empty, full)  # a few more digits of seq, no more
    assert full[1] < 1024


def test_segments_roll_over_and_acked_ones_are_removed(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger._box, "segment_bytes", 2048)
    recs = [run_session(ledger, "s1") for _ in range(40)]
    segs = segments(ledger)
    assert len(segs) >= 5
    assert all(p.stat().st_size < 2048 + 1024 for p in segs)
    assert segs[0].name == "000000000001.jsonl"
    second_first = int(segs[1].stem)
    ledger.ack(second_first - 1)  # exactly the first segment is acknowledged
    assert segments(ledger) == segs[1:]
    ledger.ack(second_first)  # one record of the second: it stays
    assert segments(ledger) == segs[1:]
    ledger.ack(40)  # everything: the full ones go, the newest stays for the next write
    assert segments(ledger) == segs[-1:]
    assert archived_seqs(ledger.data_dir) == list(range(1, 41))
    assert [r["id"] for r in ledger.records()] == [r["id"] for r in recs]
    led = reopen(ledger)
    try:
        assert led.backlog() == 0
        assert run_session(led)["seq"] == 41
    finally:
        led.close()


# ---------------------------------------------------------------- tails cut on start


def test_an_uncommitted_append_is_cut_on_start_and_its_seq_reused(ledger: Ledger) -> None:
    kept = [run_session(ledger) for _ in range(3)]
    seg = segments(ledger)[-1]
    good = seg.read_bytes()
    ghost = {**kept[-1], "id": "ghost", "seq": 4}  # appended, then the process died
    with seg.open("ab") as f:
        f.write(json.dumps(ghost).encode() + b"\n")
    led = reopen(ledger)
    try:
        assert seg.read_bytes() == good  # cut off the file, not only ignored
        assert [r["id"] for r in led.outbox()] == [r["id"] for r in kept]
        rec = run_session(led)
        assert rec["seq"] == 4
        led = reopen(led)
        assert [r["seq"] for r in led.outbox()] == [1, 2, 3, 4]
        assert "ghost" not in {r["id"] for r in led.records()}
    finally:
        led.close()


@pytest.mark.parametrize("tail", [b'{"type": "session", "id": "to', b"\x00" * 300])
def test_a_torn_tail_is_cut_on_start(ledger: Ledger, tail: bytes) -> None:
    kept = [run_session(ledger) for _ in range(2)]
    seg = segments(ledger)[-1]
    with seg.open("ab") as f:
        f.write(tail)
    led = reopen(ledger)
    try:
        assert [r["id"] for r in led.outbox()] == [r["id"] for r in kept]
        assert run_session(led)["seq"] == 3
        led = reopen(led)
        assert [r["seq"] for r in led.outbox()] == [1, 2, 3]
    finally:
        led.close()


def test_a_damaged_line_in_an_older_segment_costs_that_line_only(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ledger._box, "segment_bytes", 1024)
    recs = [run_session(ledger) for _ in range(12)]
    older = segments(ledger)[0]
    lines = older.read_bytes().splitlines(keepends=True)
    assert len(segments(ledger)) >= 3 and len(lines) >= 2
    older.write_bytes(lines[0] + b"\x00garbage\n" + b"".join(lines[2:]))  # bit rot
    led = reopen(ledger)
    try:
        lost = json.loads(lines[1])["seq"]
        assert [r["seq"] for r in led.outbox()] == [r["seq"] for r in recs if r["seq"] != lost]
        assert "damaged line" in caplog.text and "missing" in caplog.text
        assert all(p.exists() for p in segments(ledger))  # nothing else was cut
    finally:
        led.close()


def test_a_failed_commit_takes_the_append_back(ledger: Ledger,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    run_session(ledger)
    seg = segments(ledger)[-1]
    before = seg.read_bytes()
    cp = checkpoint("s1")
    ledger.start_session(cp)

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        ledger.close_session(session_record(cp))
    monkeypatch.undo()
    assert seg.read_bytes() == before
    assert ledger.backlog() == 1
    assert ledger.close_session(session_record(cp))["seq"] == 2


def test_an_uncommitted_append_that_cannot_be_cut_is_overwritten_by_the_next_write(
        ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    run_session(ledger)
    cp = checkpoint("s1")
    ledger.start_session(cp)
    long = {**session_record(cp), "note": "x" * 500}  # longer than the next record

    def fail(*args: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    monkeypatch.setattr(os, "ftruncate", fail)
    with pytest.raises(OSError):
        ledger.close_session(long)
    monkeypatch.undo()
    monkeypatch.setattr(ledger._box, "segment_bytes", 1)  # it would roll over now, but
    rec = ledger.close_session(session_record(cp))  # stays to overwrite and cut the tail
    assert rec["seq"] == 2
    led = reopen(ledger)
    try:
        assert [(r["seq"], "note" in r) for r in led.outbox()] == [(1, False), (2, False)]
        raw = b"".join(p.read_bytes() for p in segments(led))
        assert b"xxxx" not in raw
    finally:
        led.close()


# ---------------------------------------------------------------- migration


def test_a_data_dir_written_by_the_old_ledger_is_migrated_losing_nothing(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(LEGACY, data_dir)
    old = json.loads((data_dir / LEDGER_FILE).read_bytes())
    old_outbox = [old["outbox"][k] for k in sorted(old["outbox"], key=int)]
    assert [r["seq"] for r in old_outbox] == list(range(6, 15))
    led = Ledger(data_dir, CAC, CASABLANCA)
    try:
        assert led.outbox() == old_outbox  # every record, byte for byte the same fields
        assert (led.next_seq, led.acked_seq) == (15, 5)
        assert led.active_checkpoints() == list(old["state"]["1"]["active"].values())
        assert led.vouchers() == list(old["vouchers"].values())
        assert [r["seq"] for r in led.records()] == list(range(1, 15))
        new = json.loads((data_dir / LEDGER_FILE).read_bytes())
        assert "outbox" not in new
        assert [p.name for p in segments(led)] == ["000000000006.jsonl"]
        rec = run_session(led, "s1")
        assert rec["seq"] == 15
        led = reopen(led)  # a second start finds nothing left to migrate
        assert [r["seq"] for r in led.outbox()] == list(range(6, 16))
        assert led.ack(12) == 7
        assert archived_seqs(data_dir) == list(range(1, 13))
        assert [r["seq"] for r in led.outbox()] == [13, 14, 15]
    finally:
        led.close()


def test_a_reader_of_a_dir_not_migrated_yet_sees_the_old_outbox_and_changes_nothing(
        tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(LEGACY, data_dir)
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    old = json.loads((data_dir / LEDGER_FILE).read_bytes())["outbox"]
    reader = Ledger(data_dir, CAC, CASABLANCA, lock=False)
    try:
        assert reader.outbox() == [old[k] for k in sorted(old, key=int)]
        assert reader.backlog() == 9
    finally:
        reader.close()
    after = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    assert after == before and not (data_dir / OUTBOX_DIR).exists()


# ---------------------------------------------------------------- kill -9 of a real writer


class Worker:
    def __init__(self, data_dir: Path, seg_bytes: int, ack_every: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(data_dir), str(seg_bytes), str(ack_every),
             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.out: IO[str] = self.proc.stdout
        self.closed: dict[str, int] = {}
        self.acked = 0

    def read_until(self, stop: Any, deadline_s: float = 20.0) -> str:
        """Read answered lines until ``stop(line)``; fails past the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            line = self.out.readline().strip()
            if not line:
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""  # type: ignore[union-attr]
                pytest.fail(f"worker ended early: {err[-2000:]}")
            kind, *rest = line.split()
            if kind == "closed":
                self.closed[rest[1]] = int(rest[0])
            elif kind == "acked":
                self.acked = int(rest[0])
            if stop(line):
                return line
        pytest.fail("worker did not get there in time")

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.out.close()
        self.proc.stderr.close()  # type: ignore[union-attr]


def check_after_kill(data_dir: Path, closed: dict[str, int], acked: int) -> tuple[int, int]:
    led = Ledger(data_dir, CAC, CASABLANCA)
    try:
        recs = list(led.records())
        by_id = {r["id"]: r["seq"] for r in recs}
        for rid, seq in closed.items():
            assert by_id.get(rid) == seq, f"answered close {rid} (seq {seq}) lost"
        assert sorted(by_id.values()) == list(range(1, led.next_seq)), "seqs not contiguous"
        assert led.acked_seq >= acked, "an answered ack went back"
        # all acked records archived; an ack killed between its archive append and its
        # commit leaves the archive ahead of the watermark (read once, by id), never beyond
        archived = set(archived_seqs(data_dir))
        assert set(range(1, led.acked_seq + 1)) <= archived <= set(range(1, led.next_seq))
        assert [r["seq"] for r in led.outbox()] == list(range(led.acked_seq + 1, led.next_seq))
        return led.next_seq, led.acked_seq
    finally:
        led.close()


def test_kill_9_of_a_writer_at_random_points_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(15)
    closed: dict[str, int] = {}
    acked = 0
    for _ in range(6):
        w = Worker(data_dir, 1024, 7)
        w.read_until(lambda line: line == "ready")
        target = rng.randint(5, 60)
        w.read_until(lambda line, w=w, t=target: len(w.closed) >= t)  # type: ignore[misc]
        w.kill()  # mid-write, most likely: the worker never waits between writes
        closed.update(w.closed)
        acked = max(acked, w.acked)
        check_after_kill(data_dir, closed, acked)
    assert len(closed) >= 30


def test_kill_9_in_the_middle_of_a_compaction_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    closed: dict[str, int] = {}
    acked = 0
    for _ in range(3):
        w = Worker(data_dir, 512, 25, "pause")
        w.read_until(lambda line: line == "ready")
        w.read_until(lambda line: line == "compacting")
        segs_before = sorted((data_dir / OUTBOX_DIR).glob("*.jsonl"))
        w.kill()  # one segment of the ack's several removed, the next not yet
        closed.update(w.closed)
        acked = max(acked, w.acked)
        _, acked_now = check_after_kill(data_dir, closed, acked)
        left = sorted((data_dir / OUTBOX_DIR).glob("*.jsonl"))
        assert len(left) < len(segs_before), "the restart finished the compaction"
        assert acked_now > w.acked, "the ack being compacted had committed its watermark"
        acked = acked_now
    assert len(closed) >= 50
