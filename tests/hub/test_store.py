"""hub/store.py: records exactly once, the contiguous watermark, fleet rows, reopening."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.fleet import CacRecord
from hub.store import SESSION_FIELDS, Store, StoreError, open_reader
from tests.hub.factories import CAC, OTHER, health_msg, session, voucher_sale
from wire.messages import Status


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "hub.sqlite3")
    yield s
    s.close()


def test_wal_and_full_sync(store: Store) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_dedupes_by_id(store: Store) -> None:
    r1 = store.store_usage(CAC, [session(1), session(2)], 100.0)
    assert (r1.watermark, r1.stored, r1.duplicates, r1.conflicts) == (2, 2, 0, 0)
    r2 = store.store_usage(CAC, [session(1), session(2), session(3)], 101.0)
    assert (r2.watermark, r2.stored, r2.duplicates, r2.conflicts) == (3, 1, 2, 0)
    assert store.count_records() == 3
    assert [s["id"] for s in store.sessions(CAC)] == [f"{CAC}-rec-{i}" for i in (1, 2, 3)]


def test_watermark_is_highest_contiguous_seq(store: Store) -> None:
    assert store.watermark(CAC) == 0
    assert store.store_usage(CAC, [session(2), session(3)], 1.0).watermark == 0  # 1 missing
    assert store.store_usage(CAC, [session(5)], 1.0).watermark == 0
    assert store.store_usage(CAC, [session(1)], 1.0).watermark == 3  # gap filled: 1..3
    assert store.store_usage(CAC, [session(4)], 1.0).watermark == 5  # 4 joins 5
    assert store.store_usage(CAC, [], 1.0).watermark == 5
    assert store.watermark(CAC) == 5
    assert store.watermark(OTHER) == 0  # per CAC


def test_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    with Store(path) as s:
        s.store_usage(CAC, [session(1), session(3), session(4)], 1.0)
        assert s.watermark(CAC) == 1
    with Store(path) as s:
        assert s.watermark(CAC) == 1
        # the seqs held back by the gap are remembered by the records table itself
        assert s.store_usage(CAC, [session(2)], 2.0).watermark == 4
        assert s.count_records(CAC) == 4
    with open_reader(path) as r:
        assert r.watermark(CAC) == 4
        assert r.has_cac(CAC)
        assert not r.has_cac(OTHER)


def test_reader_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store"):
        open_reader(tmp_path / "missing.sqlite3")


def test_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "hub.sqlite3"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot use the store"):
        Store(bad)


def test_sessions_in_contract_shape(store: Store) -> None:
    store.store_usage(CAC, [voucher_sale(1), session(2, fee=350)], 1.0)
    store.store_usage(OTHER, [session(1, OTHER)], 1.0)
    sessions = store.sessions(CAC)
    assert len(sessions) == 1  # the voucher sale is not a session
    s = sessions[0]
    assert tuple(s)[: len(SESSION_FIELDS)] == SESSION_FIELDS
    assert s["fee"] == 350 and s["currency"] == "MAD" and s["billed_seconds"] == 1200
    assert s["seq"] == 2
    assert "cac_id" not in s and "type" not in s
    assert [r["type"] for r in store.records(CAC)] == ["voucher_sale", "session"]


def test_conflicts_are_counted_and_kept(store: Store) -> None:
    store.store_usage(CAC, [session(1), session(2)], 1.0)
    # same id sent by another CAC: not stored again, counted
    r = store.store_usage(OTHER, [session(1, OTHER, id_=f"{CAC}-rec-1")], 1.0)
    assert (r.stored, r.conflicts, r.watermark) == (0, 1, 0)
    # a new id reusing a stored seq (an agent whose ledger was reset): kept, counted
    r = store.store_usage(CAC, [session(2, id_="fresh-id")], 1.0)
    assert (r.stored, r.conflicts, r.watermark) == (1, 1, 2)
    # above the watermark it is counted when the watermark reaches it
    store.store_usage(CAC, [session(5)], 1.0)
    r = store.store_usage(CAC, [session(5, id_="fresh-5")], 1.0)
    assert (r.stored, r.conflicts, r.watermark) == (1, 0, 2)
    r = store.store_usage(CAC, [session(3), session(4)], 1.0)
    assert (r.stored, r.conflicts, r.watermark) == (2, 1, 5)
    assert store.count_records(CAC) == 7


def test_a_failed_transaction_stores_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.store_usage(CAC, [session(1)], 1.0)
        raise RuntimeError("crash in the middle of a batch")
    assert store.count_records() == 0
    assert store.watermark(CAC) == 0
    assert not store.has_cac(CAC)
    store.store_usage(CAC, [session(1)], 1.0)  # the CAC row comes back with the retry
    assert store.has_cac(CAC) and store.watermark(CAC) == 1


def test_two_connections_share_one_store(tmp_path: Path) -> None:
    """Two hub workers on one machine: each sees the other's records in the watermark."""
    path = tmp_path / "hub.sqlite3"
    with Store(path) as a, Store(path) as b:
        assert a.store_usage(CAC, [session(2)], 1.0).watermark == 0
        assert b.store_usage(CAC, [session(1)], 1.0).watermark == 2
        assert a.store_usage(CAC, [session(3)], 1.0).watermark == 3


def test_cac_rows_round_trip_and_newest_wins(store: Store) -> None:
    st_ = Status(state="online", boot_id="b1", version="0.1.0", at="x")
    store.save_cacs([CacRecord(CAC, first_seen=10.0, last_seen=20.0, status=st_,
                               health=health_msg(backlog=4), health_seen=20.0)])
    # an older view (another worker) does not regress last_seen nor health
    store.save_cacs([CacRecord(CAC, first_seen=5.0, last_seen=15.0, status=None,
                               health=health_msg(backlog=9), health_seen=15.0)])
    [row] = store.load_cacs()
    assert row.first_seen == 5.0 and row.last_seen == 20.0
    assert row.status == st_
    assert row.health is not None and row.health.backlog == 4 and row.health_seen == 20.0
    store.save_cacs([CacRecord(CAC, first_seen=5.0, last_seen=30.0,
                               health=health_msg(backlog=1), health_seen=30.0)])
    [row] = store.load_cacs()
    assert row.last_seen == 30.0 and row.health is not None and row.health.backlog == 1


def test_unreadable_stored_health_is_dropped(store: Store) -> None:
    store.save_cacs([CacRecord(CAC, first_seen=1.0, last_seen=1.0)])
    store._db.execute("UPDATE cacs SET last_health = '{\"v\": 99}'")
    [row] = store.load_cacs()
    assert row.health is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(1, 30), max_size=8), max_size=12))
def test_watermark_property(tmp_path_factory: pytest.TempPathFactory,
                            batches: list[list[int]]) -> None:
    """For any order of (repeated) seqs, the watermark is the highest contiguous one."""
    path = tmp_path_factory.mktemp("prop") / "hub.sqlite3"
    seen: set[int] = set()
    with Store(path) as s:
        for batch in batches:
            wm = s.store_usage(CAC, [session(q) for q in batch], 1.0).watermark
            seen.update(batch)
            expected = 0
            while expected + 1 in seen:
                expected += 1
            assert wm == expected
        assert s.count_records(CAC) == len(seen)


def test_the_store_is_private(tmp_path: Path) -> None:
    """Issue 16: the hub data dir was 0755 and hub.sqlite3 0644: user nobody read the
    technicians' hashes."""
    import os
    import stat

    data = tmp_path / "hub-data"
    with Store(data / "hub.sqlite3") as s, s.transaction():
        s.db.execute("CREATE TABLE IF NOT EXISTS probe (x)")
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    for name in ("hub.sqlite3", "hub.sqlite3-wal", "hub.sqlite3-shm"):
        if (data / name).exists():
            assert stat.S_IMODE(os.stat(data / name).st_mode) == 0o600, name
    os.chmod(data / "hub.sqlite3", 0o644)  # as an older hub left it
    Store(data / "hub.sqlite3").close()
    assert stat.S_IMODE(os.stat(data / "hub.sqlite3").st_mode) == 0o600
