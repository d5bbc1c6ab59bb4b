"""The ledger (agent/ledger.py): numbering, outbox, acks into daily archives, one write each."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_support import (
    CAC,
    CASABLANCA,
    T0,
    all_seqs,
    checkpoint,
    new_id,
    reopen,
    run_session,
    sale_record,
    sell,
    session_record,
    void_record,
    voucher,
)

import agent.storage
from agent.ledger import (
    ARCHIVE_DIR,
    LEDGER_FILE,
    Ledger,
    LedgerError,
    LedgerLocked,
    StorageError,
    voucher_doc_id,
)
from agent.meter.vouchers import generate_code
from agent.storage import append_lines_durable, read_lines

# ---------------------------------------------------------------- numbering


def test_sequence_starts_at_one_and_has_no_gaps(ledger: Ledger) -> None:
    assert ledger.next_seq == 1
    assert ledger.acked_seq == 0
    first = run_session(ledger, "s1")
    v, sale = sell(ledger)
    void = ledger.void_voucher(v["code"], "sold by mistake", void_record(sale["id"]))
    second = run_session(ledger, "s2")
    assert [first["seq"], sale["seq"], void["seq"], second["seq"]] == [1, 2, 3, 4]
    assert ledger.next_seq == 5

    led = reopen(ledger)
    try:
        assert led.next_seq == 5
        assert run_session(led, "s1")["seq"] == 5
        led.ack(3)
        assert sell(led)[1]["seq"] == 6
        led = reopen(led)
        assert run_session(led, "s3")["seq"] == 7
        assert all_seqs(led) == list(range(1, 8))
    finally:
        led.close()


def test_refused_changes_consume_no_sequence_number(ledger: Ledger) -> None:
    v, _ = sell(ledger)
    cp = checkpoint("s1")
    with pytest.raises(LedgerError):
        ledger.close_session(session_record(cp))  # never started
    with pytest.raises(LedgerError):
        ledger.void_voucher(generate_code(), "x", void_record("nope"))
    with pytest.raises(LedgerError, match="needs 'at'"):
        ledger.sell_voucher(voucher(), {"type": "voucher_sale", "id": new_id()})
    with pytest.raises(LedgerError, match="collision"):
        ledger.sell_voucher(v, sale_record(v))  # same code twice
    assert ledger.next_seq == 2
    assert run_session(ledger)["seq"] == 2


def test_every_record_has_a_unique_id_cac_id_and_seq(ledger: Ledger) -> None:
    for i in range(5):
        run_session(ledger, f"s{i}")
        sell(ledger)
    recs = list(ledger.records())
    assert len(recs) == 10
    assert all(r["cac_id"] == CAC for r in recs)
    assert len({r["id"] for r in recs}) == 10
    assert sorted(r["seq"] for r in recs) == list(range(1, 11))
    assert {r["type"] for r in recs} == {"session", "voucher_sale"}


def test_outbox_is_in_sequence_order_after_and_limit(ledger: Ledger) -> None:
    ids = [run_session(ledger, "s1")["id"] for _ in range(12)]  # seq 10..12 sort after 9 as ints
    assert [r["seq"] for r in ledger.outbox()] == list(range(1, 13))
    assert [r["id"] for r in ledger.outbox()] == ids
    assert [r["seq"] for r in ledger.outbox(after_seq=8)] == [9, 10, 11, 12]
    assert [r["seq"] for r in ledger.outbox(after_seq=2, limit=3)] == [3, 4, 5]
    assert ledger.outbox(after_seq=12) == []
    assert ledger.backlog() == 12


# ---------------------------------------------------------------- acknowledgements


def archive_ids(led: Ledger, day: str) -> list[str]:
    return [r["id"] for r in read_lines(led.archive_dir / f"{day}.jsonl")]


def test_ack_moves_records_to_the_archive_and_out_of_the_outbox(ledger: Ledger) -> None:
    recs = [run_session(ledger, "s1", T0 + timedelta(hours=i)) for i in range(5)]
    assert ledger.ack(3) == 3
    assert ledger.acked_seq == 3
    assert [r["seq"] for r in ledger.outbox()] == [4, 5]
    archived = list(read_lines(ledger.archive_dir / "2026-01-15.jsonl"))
    assert archived == recs[:3]  # the whole record, as it left the outbox
    led = reopen(ledger)
    try:
        assert led.acked_seq == 3
        assert [r["seq"] for r in led.outbox()] == [4, 5]
        assert [r["id"] for r in led.records()] == [r["id"] for r in recs]
    finally:
        led.close()


@pytest.mark.parametrize(("utc_day", "local_day", "offset"), [
    ("2026-01-15", "2026-01-16", timedelta(hours=1)),  # standard time, UTC+01
    ("2026-07-15", "2026-07-16", timedelta(hours=1)),  # summer, UTC+01
    ("2026-03-01", "2026-03-01", timedelta(0)),  # Ramadan 2026, UTC+00
])
def test_ack_archives_by_the_local_day_in_the_ledger_zone(
    ledger: Ledger, utc_day: str, local_day: str, offset: timedelta
) -> None:
    at = datetime.fromisoformat(f"{utc_day}T23:30:00+00:00")
    assert at.astimezone(CASABLANCA).utcoffset() == offset  # the zone data says so
    rec = run_session(ledger, "s1", at - timedelta(minutes=10), billed=600)
    ledger.ack(rec["seq"])
    assert [p.name for p in ledger.archive_dir.iterdir()] == [f"{local_day}.jsonl"]
    assert archive_ids(ledger, local_day) == [rec["id"]]
    d = date.fromisoformat(local_day)
    assert [r["id"] for r in ledger.records(d, d)] == [rec["id"]]
    assert list(ledger.records(d + timedelta(days=1))) == []


def test_ack_splits_records_by_local_day(ledger: Ledger) -> None:
    a = run_session(ledger, "s1", datetime(2026, 1, 15, 22, 0, tzinfo=UTC))  # 23:10 local
    b = run_session(ledger, "s1", datetime(2026, 1, 15, 23, 0, tzinfo=UTC))  # 00:10 next day
    ledger.ack(2)
    assert archive_ids(ledger, "2026-01-15") == [a["id"]]
    assert archive_ids(ledger, "2026-01-16") == [b["id"]]


def test_ack_is_idempotent_and_tolerates_late_acks(ledger: Ledger) -> None:
    for _ in range(4):
        run_session(ledger)
    assert ledger.ack(3) == 3
    path = ledger.archive_dir / "2026-01-15.jsonl"
    archived = path.read_bytes()
    writes = ledger.storage.writes
    assert ledger.ack(3) == 0  # the same ack again
    assert ledger.ack(1) == 0  # a late, older ack
    assert ledger.ack(0) == 0
    assert path.read_bytes() == archived
    assert ledger.storage.writes == writes
    assert ledger.acked_seq == 3
    assert ledger.ack(4) == 1
    assert len(archive_ids(ledger, "2026-01-15")) == 4


def test_ack_beyond_the_last_record_is_refused_and_changes_nothing(ledger: Ledger) -> None:
    for _ in range(3):
        run_session(ledger)
    ledger.ack(1)
    live = (ledger.data_dir / LEDGER_FILE).read_bytes()
    archive = ledger.archive_dir / "2026-01-15.jsonl"
    archived = archive.read_bytes()
    writes = ledger.storage.writes
    with pytest.raises(LedgerError, match="ack 4 is beyond the last record 3"):
        ledger.ack(4)
    with pytest.raises(LedgerError):
        ledger.ack(10**6)
    assert ledger.acked_seq == 1
    assert [r["seq"] for r in ledger.outbox()] == [2, 3]
    assert ledger.storage.writes == writes
    assert (ledger.data_dir / LEDGER_FILE).read_bytes() == live
    assert archive.read_bytes() == archived


def test_ack_on_an_empty_ledger_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError):
        ledger.ack(1)
    assert not (ledger.data_dir / LEDGER_FILE).exists()


def test_records_counts_a_record_once_when_a_crash_left_it_in_archive_and_outbox(
    ledger: Ledger,
) -> None:
    recs = [run_session(ledger, "s1") for _ in range(3)]
    # a crash between the archive append and the outbox removal of ack(2):
    append_lines_durable(ledger.archive_dir / "2026-01-15.jsonl", recs[:2])
    assert ledger.backlog() == 3
    ids = [r["id"] for r in ledger.records()]
    assert Counter(ids) == Counter(r["id"] for r in recs)
    # the ack is redone after the restart: the archive now holds them twice, still read once
    ledger.ack(2)
    assert len(archive_ids(ledger, "2026-01-15")) == 4
    ids = [r["id"] for r in ledger.records()]
    assert sorted(ids) == sorted(r["id"] for r in recs)
    d = date(2026, 1, 15)
    assert len(list(ledger.records(d, d))) == 3


def test_records_filters_by_local_day_in_archive_and_outbox(ledger: Ledger) -> None:
    days = [run_session(ledger, "s1", datetime(2026, 1, d, 9, 0, tzinfo=UTC)) for d in (10, 11,
                                                                                      12, 13)]
    ledger.ack(2)  # 10th and 11th archived, 12th and 13th in the outbox
    (ledger.archive_dir / "notes.jsonl").write_text('{"id": "stray"}\n')  # not a day file
    got = [r["id"] for r in ledger.records(date(2026, 1, 11), date(2026, 1, 12))]
    assert got == [days[1]["id"], days[2]["id"]]
    assert len(list(ledger.records())) == 4


# ---------------------------------------------------------------- locking and damage


def test_a_second_ledger_on_the_same_directory_is_locked_out(ledger: Ledger) -> None:
    with pytest.raises(LedgerLocked, match="already using"):
        Ledger(ledger.data_dir, CAC, CASABLANCA)
    ledger.close()
    again = Ledger(ledger.data_dir, CAC, CASABLANCA)  # free once the first is closed
    again.close()


def test_a_corrupt_ledger_file_is_refused_and_releases_the_lock(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    led = Ledger(data_dir, CAC, CASABLANCA)
    run_session(led)
    led.close()
    path = data_dir / LEDGER_FILE
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(StorageError, match="not valid JSON"):
        Ledger(data_dir, CAC, CASABLANCA)
    path.write_bytes(good)  # restored from a backup: the same process may open it now
    led = Ledger(data_dir, CAC, CASABLANCA)
    try:
        assert led.next_seq == 2
    finally:
        led.close()


# ---------------------------------------------------------------- sessions and vouchers


def test_start_session_refuses_a_busy_station(ledger: Ledger) -> None:
    ledger.start_session(checkpoint("s1"))
    writes = ledger.storage.writes
    with pytest.raises(LedgerError, match="station s1 already has a session"):
        ledger.start_session(checkpoint("s1"))
    assert ledger.storage.writes == writes
    assert len(ledger.active_checkpoints()) == 1
    ledger.start_session(checkpoint("s2"))
    assert {cp["station"] for cp in ledger.active_checkpoints()} == {"s1", "s2"}


def test_start_session_refuses_a_voucher_in_use_or_unknown(ledger: Ledger) -> None:
    v, _ = sell(ledger)
    first = checkpoint("s1", voucher_code=v["code"])
    ledger.start_session(first, v["code"])
    assert ledger.voucher(v["code"])["in_use"] == first["id"]  # type: ignore[index]
    live = (ledger.data_dir / LEDGER_FILE).read_bytes()
    with pytest.raises(LedgerError, match="in use"):
        ledger.start_session(checkpoint("s2"), v["code"])
    with pytest.raises(LedgerError, match="unknown voucher"):
        ledger.start_session(checkpoint("s3"), generate_code())
    assert (ledger.data_dir / LEDGER_FILE).read_bytes() == live
    assert [cp["station"] for cp in ledger.active_checkpoints()] == ["s1"]
    with pytest.raises(LedgerError, match="in use"):
        ledger.void_voucher(v["code"], "refund", void_record("x"))


def test_close_session_is_one_write_that_does_three_things(ledger: Ledger) -> None:
    v, _ = sell(ledger, minutes=30)
    cp = checkpoint("s1", voucher_code=v["code"])
    ledger.start_session(cp, v["code"])
    writes = ledger.storage.writes
    stored = ledger.close_session(session_record(cp, billed=600), v["code"], 600)
    assert ledger.storage.writes == writes + 1
    assert stored["seq"] == 2
    led = reopen(ledger)  # and all three are on disk
    try:
        assert led.active_checkpoints() == []
        entry = led.voucher(v["code"])
        assert entry is not None
        assert entry["in_use"] is None
        assert entry["voucher"]["seconds_left"] == 1200
        assert led.outbox(after_seq=1) == [stored]
    finally:
        led.close()


def test_close_session_never_spends_below_zero(ledger: Ledger) -> None:
    v, _ = sell(ledger, minutes=5)
    cp = checkpoint("s1")
    ledger.start_session(cp, v["code"])
    ledger.close_session(session_record(cp, billed=900), v["code"], 900)
    entry = ledger.voucher(v["code"])
    assert entry is not None
    assert entry["voucher"]["seconds_left"] == 0


def test_a_failed_write_during_close_session_changes_nothing(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    v, _ = sell(ledger, minutes=30)
    cp = checkpoint("s1")
    ledger.start_session(cp, v["code"])
    live_path = ledger.data_dir / LEDGER_FILE
    live = live_path.read_bytes()
    outbox = ledger.outbox()
    writes = ledger.storage.writes

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(agent.storage.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        ledger.close_session(session_record(cp), v["code"], 600)
    monkeypatch.undo()

    def check(led: Ledger) -> None:
        assert [c["id"] for c in led.active_checkpoints()] == [cp["id"]]
        entry = led.voucher(v["code"])
        assert entry is not None
        assert entry["in_use"] == cp["id"]
        assert entry["voucher"]["seconds_left"] == 1800
        assert led.outbox() == outbox
        assert led.next_seq == 2

    check(ledger)  # in memory
    assert ledger.storage.writes == writes
    assert live_path.read_bytes() == live  # on disk
    # the retry takes the number the failed attempt would have had
    assert ledger.close_session(session_record(cp), v["code"], 600)["seq"] == 2
    led = reopen(ledger)
    try:
        assert led.active_checkpoints() == []
        assert all_seqs(led) == [1, 2]
    finally:
        led.close()


@pytest.mark.parametrize(("record_change", "spent", "error"), [
    ({"at": None}, 600, LedgerError),  # refused after the checkpoint was already dropped
    ({}, "600", TypeError),  # a programming error halfway through the change
])
def test_a_change_that_fails_halfway_leaves_memory_as_it_was(
    ledger: Ledger, record_change: dict[str, Any], spent: Any, error: type[Exception]
) -> None:
    v, _ = sell(ledger, minutes=30)
    cp = checkpoint("s1")
    ledger.start_session(cp, v["code"])
    record = {k: val for k, val in session_record(cp).items()
              if k not in record_change or record_change[k] is not None}
    with pytest.raises(error):
        ledger.close_session(record, v["code"], spent)
    assert [c["id"] for c in ledger.active_checkpoints()] == [cp["id"]]
    entry = ledger.voucher(v["code"])
    assert entry is not None
    assert (entry["in_use"], entry["voucher"]["seconds_left"]) == (cp["id"], 1800)
    assert ledger.next_seq == 2


def test_checkpoint_replaces_billed_time_and_refuses_unknown_sessions(ledger: Ledger) -> None:
    cp = checkpoint("s1")
    ledger.start_session(cp)
    ledger.checkpoint([{**cp, "billed_seconds": 42}])
    with pytest.raises(LedgerError, match="no active session"):
        ledger.checkpoint([{**cp, "billed_seconds": 50}, checkpoint("s2")])
    led = reopen(ledger)
    try:
        assert [c["billed_seconds"] for c in led.active_checkpoints()] == [42]
    finally:
        led.close()


def test_void_voucher_marks_it_void_once(ledger: Ledger) -> None:
    v, sale = sell(ledger)
    rec = ledger.void_voucher(v["code"], "refund", void_record(sale["id"]))
    assert rec["seq"] == 2
    entry = ledger.voucher(v["code"])
    assert entry is not None
    assert entry["voucher"]["void"] is True
    with pytest.raises(LedgerError, match="already void"):
        ledger.void_voucher(v["code"], "again", void_record(sale["id"]))
    assert ledger.next_seq == 3


def test_prune_vouchers_drops_only_dead_ones(ledger: Ledger) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    old = now - timedelta(days=10)
    recent = now - timedelta(days=2)
    dead = [
        sell(ledger, sold_at=old, left=0)[0],  # used up more than a week ago
        sell(ledger, sold_at=old, void=True)[0],  # voided, sold more than a week ago
        sell(ledger, sold_at=now - timedelta(days=40), valid_days=30)[0],  # expired 10 days ago
    ]
    alive = [
        sell(ledger, sold_at=recent, left=0)[0],  # used up, but recent: kept a while
        sell(ledger, sold_at=recent, void=True)[0],  # voided recently
        sell(ledger, sold_at=now - timedelta(days=32), valid_days=30)[0],  # expired 2 days ago
        sell(ledger, sold_at=old, valid_days=30)[0],  # still valid with time left
    ]
    in_use = sell(ledger, sold_at=now - timedelta(days=60), valid_days=30)[0]
    ledger.start_session(checkpoint("s1"), in_use["code"])  # expired long ago, but in a session
    alive.append(in_use)
    next_seq = ledger.next_seq

    assert ledger.prune_vouchers(now) == 3
    assert {e["voucher"]["code"] for e in ledger.vouchers()} == {v["code"] for v in alive}
    assert ledger.next_seq == next_seq  # pruning is no money event
    writes = ledger.storage.writes
    assert ledger.prune_vouchers(now) == 0
    assert ledger.storage.writes == writes  # nothing to drop: no write
    led = reopen(ledger)
    try:
        assert {e["voucher"]["code"] for e in led.vouchers()} == {v["code"] for v in alive}
        assert all(led.voucher(v["code"]) is None for v in dead)
    finally:
        led.close()


def test_voucher_doc_id_is_the_code_value_plus_one() -> None:
    assert voucher_doc_id("00000-00000") == "1"
    assert voucher_doc_id("00000-00001") == "2"
    assert voucher_doc_id("ZZZZZ-ZZZZZ") == str(2**50)


def test_the_live_file_stays_small_once_records_are_acked(ledger: Ledger) -> None:
    at = T0
    for batch in range(20):
        for _ in range(100):
            run_session(ledger, "s1", at)
            at += timedelta(minutes=7)
        ledger.ack(ledger.next_seq - 1)
        assert ledger.acked_seq == (batch + 1) * 100
    live = (ledger.data_dir / LEDGER_FILE).stat().st_size
    assert live < 2048, f"ledger.json is {live} bytes after 2,000 acked records"
    assert ledger.backlog() == 0
    lines = sum(len(p.read_bytes().splitlines())
                for p in (ledger.data_dir / ARCHIVE_DIR).glob("*.jsonl"))
    assert lines == 2000
    assert all_seqs(ledger) == list(range(1, 2001))
    state = json.loads((ledger.data_dir / LEDGER_FILE).read_bytes())["state"]["1"]
    assert (state["next_seq"], state["acked_seq"]) == (2001, 2000)
