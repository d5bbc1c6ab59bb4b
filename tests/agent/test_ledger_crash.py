"""The ledger under a crash at every step (issue 23): each money operation runs with its
file-system calls recorded (tests/crashfs.py), then a crash is replayed after every prefix
of them, in every mode (kill -9, pessimistic power cut, names-but-no-data, torn append), and
the restarted ledger must hold:

- it starts (no exception) and takes the next write with the next seq;
- the write is all there or not there at all (the state before or after, nothing between),
  and once it was answered (all steps done) it is there, in every mode;
- seqs run 1..next_seq-1 with no gap and each record is there once; the outbox is exactly
  (watermark, next_seq); every record at or below the watermark is in the archive.

Run with ``-s`` to see the steps and crash points of each operation.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from crashfs import Model, record, tree
from crashfs import crash_points as points
from ledger_support import (
    CAC,
    CASABLANCA,
    T0,
    checkpoint,
    run_session,
    sale_record,
    sell,
    session_record,
    void_record,
    voucher,
)

import agent.ledger
import agent.outbox
import agent.storage
import common.durable
from agent.ledger import ARCHIVE_DIR, Ledger
from agent.outbox import OUTBOX_DIR
from agent.storage import read_lines

LEGACY = Path(__file__).parent / "data" / "ledger-v1"
SPIED = [agent.storage, common.durable, agent.outbox, agent.ledger]
SIZES = {"one-segment": 1 << 20, "new-segment-each-write": 300}


@dataclass
class Site:
    """The ledger before the operation: history acked, a backlog, sessions running."""

    dir: Path
    led: Ledger | None = None
    codes: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)


def build(data_dir: Path) -> Site:
    site = Site(data_dir)
    led = site.led = Ledger(data_dir, CAC, CASABLANCA)
    for i in range(3):  # the third on the next local day: its ack starts a new archive file
        run_session(led, "s1", T0 + timedelta(hours=(0, 1, 14)[i]))
    v1, _ = sell(led, minutes=30)
    led.ack(2)  # 1..2 archived, 3..4 in the outbox
    v2, _ = sell(led, minutes=60)
    site.codes = {"v1": v1["code"], "v2": v2["code"]}
    s1 = checkpoint("s1", T0 + timedelta(hours=5))
    led.start_session(s1)
    s2 = checkpoint("s2", T0 + timedelta(hours=5), voucher_code=v2["code"])
    led.start_session(s2, v2["code"])
    site.sessions = {"s1": s1, "s2": s2}
    return site


def legacy(data_dir: Path) -> Site:
    shutil.copytree(LEGACY, data_dir)
    return Site(data_dir)


def cut_tail(data_dir: Path) -> Site:
    """A directory a crash left with an uncommitted record and a torn line in the outbox."""
    site = build(data_dir)
    assert site.led is not None
    rec = site.led.outbox()[-1]
    site.led.close()
    seg = sorted((data_dir / "outbox").glob("*.jsonl"))[-1]
    with seg.open("ab") as f:
        f.write(agent.ledger._encoder.encode({**rec, "id": "ghost", "seq": rec["seq"] + 1})
                + b"\n" + b'{"type": "sess')
    site.led = None
    return site


def reopen_and_close(site: Site) -> Any:
    Ledger(site.dir, CAC, CASABLANCA).close()
    return None


def _led(site: Site) -> Ledger:
    assert site.led is not None
    return site.led


OPS: dict[str, tuple[Callable[[Path], Site], Callable[[Site], Any]]] = {
    "close": (build, lambda s: _led(s).close_session(session_record(s.sessions["s1"], 900))),
    "close-voucher": (build, lambda s: _led(s).close_session(
        session_record(s.sessions["s2"], 900), s.codes["v2"], 900)),
    "voucher-sale": (build, lambda s: _led(s).sell_voucher(v := voucher(), sale_record(v))),
    "void": (build, lambda s: _led(s).void_voucher(s.codes["v1"], "refund",
                                                   void_record("sale"))),
    "redeem": (build, lambda s: _led(s).start_session(
        checkpoint("s3", voucher_code=s.codes["v1"]), s.codes["v1"])),
    "start": (build, lambda s: _led(s).start_session(checkpoint("s3"))),
    "checkpoint": (build, lambda s: _led(s).checkpoint(
        [{**s.sessions["s1"], "billed_seconds": 120}])),
    "ack-all": (build, lambda s: _led(s).ack(_led(s).next_seq - 1)),
    "ack-part": (build, lambda s: _led(s).ack(3)),
    "migration": (legacy, reopen_and_close),
    "restart-cuts-tail": (cut_tail, reopen_and_close),
}


def summary(led: Ledger) -> dict[str, Any]:
    recs = list(led.records())
    return {
        "records": sorted((r["seq"], r["id"], r["type"]) for r in recs),
        "next_seq": led.next_seq, "acked_seq": led.acked_seq,
        "active": sorted((cp["id"], cp["billed_seconds"]) for cp in led.active_checkpoints()),
        "vouchers": sorted((e["voucher"]["code"], e["voucher"]["seconds_left"],
                            e["voucher"]["void"], e["in_use"]) for e in led.vouchers()),
    }


def only_committed_lines(data_dir: Path, next_seq: int) -> None:
    """Once restarted, the segment files hold only whole committed records, once each (what
    a raw reader such as a backup or a test helper sees)."""
    seqs = []
    for p in sorted((data_dir / OUTBOX_DIR).glob("*.jsonl")):
        for line in p.read_bytes().splitlines():
            try:
                seqs.append(json.loads(line)["seq"])
            except ValueError:
                raise AssertionError(f"{p.name} holds a torn line {line[:40]!r}") from None
    assert len(seqs) == len(set(seqs)), f"a seq twice in the segments: {seqs}"
    assert all(seq < next_seq for seq in seqs), f"an uncommitted record left: {seqs}"


def check_invariants(data_dir: Path) -> dict[str, Any]:
    """Open the ledger a crash left, check what must always hold, return its summary."""
    led = Ledger(data_dir, CAC, CASABLANCA)
    try:
        got = summary(led)
        seqs = [seq for seq, _, _ in got["records"]]
        assert seqs == list(range(1, led.next_seq)), "seqs have a gap or a duplicate"
        assert len({rid for _, rid, _ in got["records"]}) == len(seqs), "an id twice"
        assert [r["seq"] for r in led.outbox()] == list(range(led.acked_seq + 1, led.next_seq))
        archived = {r["seq"] for p in (data_dir / ARCHIVE_DIR).glob("*.jsonl")
                    for r in read_lines(p)}
        missing = set(range(1, led.acked_seq + 1)) - archived
        assert not missing, f"acknowledged records {sorted(missing)} are not in the archive"
        closed = {rid for _, rid, kind in got["records"] if kind == "session"}
        assert not closed & {sid for sid, _ in got["active"]}, "a session active and closed"
        only_committed_lines(data_dir, led.next_seq)
        # and it goes on: the next write takes the next number and survives a restart
        assert run_session(led, "s9", T0 + timedelta(days=1))["seq"] == led.next_seq - 1
        led.close()
        led = Ledger(data_dir, CAC, CASABLANCA)
        assert sorted(r["seq"] for r in led.records()) == list(range(1, led.next_seq))
        only_committed_lines(data_dir, led.next_seq)
        assert led.ack(led.next_seq - 1) >= 1
    finally:
        led.close()
    return got


@dataclass
class Figures:
    ops: int = 0
    steps: int = 0
    points: int = 0


FIGURES = Figures()


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    print(f"\ncrash harness: {FIGURES.ops} operations, {FIGURES.steps} recorded steps, "
          f"{FIGURES.points} distinct crash states replayed")


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("name", list(OPS))
def test_a_crash_at_any_step_of_a_money_operation_loses_and_duplicates_nothing(
        name: str, size: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if name in ("migration", "restart-cuts-tail") and size != "one-segment":
        pytest.skip("opens the ledger: the segment size plays no part")
    monkeypatch.setattr(agent.outbox, "SEGMENT_BYTES", SIZES[size])
    make, op = OPS[name]
    site = make(tmp_path / "data")
    model = Model(site.dir)
    with monkeypatch.context() as m:
        rec = record(m, site.dir, SPIED)
        answer = op(site)
    ops = rec.steps()
    live = summary(site.led) if site.led is not None else None
    if site.led is not None:
        site.led.close()
    after_tree = tree(site.dir)
    results: list[tuple[int, str, dict[str, Any]]] = []
    for k, mode, crashed in points(model, ops, tmp_path / "scratch"):
        if k == len(ops) and mode == "kill":
            # the model replays the recording to exactly the directory the code left
            assert tree(crashed) == after_tree, "the spy missed a step"
        try:
            results.append((k, mode, check_invariants(crashed)))
        except AssertionError as exc:
            step = ops[k - 1][:2] if k else "none"
            raise AssertionError(f"{name}: crash after step {k}/{len(ops)} {step}, "
                                 f"mode {mode}: {exc}") from None
    before = results[0][2]
    after = [got for k, _, got in results if k == len(ops)]
    for got in after:
        assert got == after[0], f"{name}: the answered write is not all there after a crash"
    for k, mode, got in results:
        assert got in (before, after[0]), f"{name}: half a write after step {k} ({mode})"
    if live is not None:
        assert live == after[0], "the running ledger and what a restart reads disagree"
    if isinstance(answer, dict) and "seq" in answer:
        assert (answer["seq"], answer["id"], answer["type"]) in after[0]["records"]
        assert answer["seq"] not in {seq for seq, _, _ in before["records"]}
    FIGURES.ops += 1
    FIGURES.steps += len(ops)
    FIGURES.points += len(results)
    print(f"{name} [{size}]: {len(ops)} steps, {len(results)} crash states")
