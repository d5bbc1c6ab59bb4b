"""hub/store.py: records exactly once, the contiguous watermark, fleet rows, reopening."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.fleet import CacRecord
from hub.pgstore import MIGRATIONS, PgStore
from hub.store import SESSION_FIELDS, Store, StoreError, UsageStore, open_reader
from tests.hub.factories import CAC, OTHER, health_msg, session, voucher_sale
from wire.messages import Status

Opener = Callable[[], UsageStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens one more connection to the same store: SQLite in a file, or a PostgreSQL
    database of a real server (``pg_url``); all are closed at the end."""
    opened: list[UsageStore] = []
    if request.param == "sqlite":
        def make() -> UsageStore:
            opened.append(Store(tmp_path / "hub.sqlite3"))
            return opened[-1]
    else:
        url = request.getfixturevalue("pg_url")

        def make() -> UsageStore:
            opened.append(PgStore(url, tmp_path / "aux.sqlite3"))
            return opened[-1]
    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(opener: Opener) -> UsageStore:
    return opener()


def _execute(store: UsageStore, sql: str) -> None:
    """A raw statement on the store's own database (either backend)."""
    if isinstance(store, PgStore):
        with store.transaction() as conn:
            conn.execute(sql.encode())
    else:
        assert isinstance(store, Store)
        store.db.execute(sql)


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.sqlite3")
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_dedupes_by_id(store: UsageStore) -> None:
    r1 = store.store_usage(CAC, [session(1), session(2)], 100.0)
    assert (r1.watermark, r1.stored, r1.duplicates, r1.conflicts) == (2, 2, 0, 0)
    r2 = store.store_usage(CAC, [session(1), session(2), session(3)], 101.0)
    assert (r2.watermark, r2.stored, r2.duplicates, r2.conflicts) == (3, 1, 2, 0)
    assert store.count_records() == 3
    assert [s["id"] for s in store.sessions(CAC)] == [f"{CAC}-rec-{i}" for i in (1, 2, 3)]


def test_watermark_is_highest_contiguous_seq(store: UsageStore) -> None:
    assert store.watermark(CAC) == 0
    assert store.store_usage(CAC, [session(2), session(3)], 1.0).watermark == 0  # 1 missing
    assert store.store_usage(CAC, [session(5)], 1.0).watermark == 0
    assert store.store_usage(CAC, [session(1)], 1.0).watermark == 3  # gap filled: 1..3
    assert store.store_usage(CAC, [session(4)], 1.0).watermark == 5  # 4 joins 5
    assert store.store_usage(CAC, [], 1.0).watermark == 5
    assert store.watermark(CAC) == 5
    assert store.watermark(OTHER) == 0  # per CAC


def test_survives_reopen(opener: Opener) -> None:
    s = opener()
    s.store_usage(CAC, [session(1), session(3), session(4)], 1.0)
    assert s.watermark(CAC) == 1
    s.close()
    s = opener()
    assert s.watermark(CAC) == 1
    # the seqs held back by the gap are remembered by the records table itself
    assert s.store_usage(CAC, [session(2)], 2.0).watermark == 4
    assert s.count_records(CAC) == 4
    r = opener()
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


def test_sessions_in_contract_shape(store: UsageStore) -> None:
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


def test_conflicts_are_counted_and_kept(store: UsageStore) -> None:
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


def test_a_failed_transaction_stores_nothing(store: UsageStore) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.store_usage(CAC, [session(1)], 1.0)
        raise RuntimeError("crash in the middle of a batch")
    assert store.count_records() == 0
    assert store.watermark(CAC) == 0
    assert not store.has_cac(CAC)
    store.store_usage(CAC, [session(1)], 1.0)  # the CAC row comes back with the retry
    assert store.has_cac(CAC) and store.watermark(CAC) == 1


def test_two_connections_share_one_store(opener: Opener) -> None:
    """Two hub workers: each sees the other's records in the watermark."""
    a, b = opener(), opener()
    assert a.store_usage(CAC, [session(2)], 1.0).watermark == 0
    assert b.store_usage(CAC, [session(1)], 1.0).watermark == 2
    assert a.store_usage(CAC, [session(3)], 1.0).watermark == 3


def test_cac_rows_round_trip_and_newest_wins(store: UsageStore) -> None:
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


def test_unreadable_stored_health_is_dropped(store: UsageStore) -> None:
    store.save_cacs([CacRecord(CAC, first_seen=1.0, last_seen=1.0)])
    _execute(store, "UPDATE cacs SET last_health = '{\"v\": 99}'")
    [row] = store.load_cacs()
    assert row.health is None


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(1, 30), max_size=8), max_size=12))
def test_watermark_property(store: UsageStore, batches: list[list[int]]) -> None:
    """For any order of (repeated) seqs, the watermark is the highest contiguous one."""
    cac = f"cac-{uuid.uuid4().hex[:12]}"  # one store for all examples: a CAC each
    seen: set[int] = set()
    s = store
    for batch in batches:
        wm = s.store_usage(cac, [session(q, cac) for q in batch], 1.0).watermark
        seen.update(batch)
        expected = 0
        while expected + 1 in seen:
            expected += 1
        assert wm == expected
    assert s.count_records(cac) == len(seen)


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


@pytest.mark.parametrize("many", [False, True], ids=["per-cac", "store_usage_many"])
def test_concurrent_writers_store_each_record_once(opener: Opener, many: bool) -> None:
    """Two workers ingest overlapping batches of two CACs at the same time, on their own
    connections: every record is stored once and each watermark ends at the top seq."""
    n = 400
    writers = [opener(), opener()]
    results: list[list[Any]] = [[], []]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def work(i: int) -> None:
        s = writers[i]
        try:
            start.wait(10)
            # writer 0 walks up, writer 1 down, in overlapping windows of 10 seqs
            seqs = range(1, n + 1, 5) if i == 0 else range(n - 9, 0, -5)
            for lo in seqs:
                batch = list(range(lo, min(lo + 10, n + 1)))
                usage = [(cac, [session(q, cac) for q in batch]) for cac in (OTHER, CAC)]
                if many:  # as Ingest.handle_batch
                    results[i].extend(r for _, r in s.store_usage_many(usage, 1.0))
                    continue
                with s.transaction():  # both CACs in one transaction, in cac_id order
                    for cac, recs in sorted(usage):
                        results[i].append(s.store_usage(cac, recs, 1.0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    check = opener()
    for cac in (CAC, OTHER):
        assert check.count_records(cac) == n
        assert check.watermark(cac) == n
        assert [r["seq"] for r in check.records(cac)] == list(range(1, n + 1))
    every = results[0] + results[1]
    assert sum(r.stored for r in every) == 2 * n  # each stored by exactly one writer
    assert sum(r.conflicts for r in every) == 0
    assert max(r.watermark for r in every) == n


def test_postgres_migrations_apply_once_when_workers_start_together(pg_url: str,
                                                                   tmp_path: Path) -> None:
    stores: list[PgStore] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one(i: int) -> None:
        try:
            start.wait(10)
            stores.append(PgStore(pg_url, tmp_path / f"aux{i}.sqlite3"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors, errors
        with stores[0].transaction() as conn:
            versions = [r[0] for r in conn.execute(
                "SELECT version FROM schema_migrations ORDER BY version")]
        assert versions == [v for v, _ in MIGRATIONS]
        assert stores[0].migrate() == []  # nothing left to apply
    finally:
        for s in stores:
            s.close()


def test_postgres_down_at_start_is_a_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://hub:secret@127.0.0.1:{port}/cachub"
    with pytest.raises(StoreError, match="cannot connect to the PostgreSQL store") as err:
        PgStore(url, tmp_path / "aux.sqlite3", connect_timeout=1.0)
    assert "secret" not in str(err.value)


def test_watermark_exact_when_two_writers_race_on_neighbours(opener: Opener) -> None:
    """Round after round, two writers store seq 2k+1 and 2k+2 at the same instant: whoever
    commits last must see the other's row, so the watermark is 2k+2 after every round (a
    walk that missed the other's uncommitted row would leave it at 2k or 2k+1)."""
    rounds = 60
    writers = [opener(), opener()]
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    lag: list[int] = []

    def work(i: int) -> None:
        try:
            for k in range(rounds):
                barrier.wait(10)
                writers[i].store_usage(CAC, [session(2 * k + 1 + i)], 1.0)
                barrier.wait(10)  # both committed
                if i == 0:
                    lag.append(2 * k + 2 - check.watermark(CAC))
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()

    check = opener()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert lag == [0] * rounds
    assert check.count_records(CAC) == 2 * rounds
    assert check.watermark(CAC) == 2 * rounds


def test_one_lease_holder_and_takeover_after_expiry(opener: Opener) -> None:
    import time

    a, b = opener(), opener()
    assert a.hold_lease("worker-a", ttl=0.5)
    assert not b.hold_lease("worker-b", ttl=0.5)  # held by a
    assert a.hold_lease("worker-a", ttl=0.5)  # renewed
    deadline = time.monotonic() + 10
    while not b.hold_lease("worker-b", ttl=30):  # a stopped renewing: b takes it
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.05)
    assert not a.hold_lease("worker-a", ttl=30)
    b.release_lease("worker-b")
    assert a.hold_lease("worker-a", ttl=30)  # released: taken at once


def test_two_workers_racing_for_the_lease_get_one_holder(opener: Opener) -> None:
    stores = [opener() for _ in range(4)]
    start = threading.Barrier(4)
    held: list[bool] = [False] * 4

    def grab(i: int) -> None:
        start.wait(10)
        held[i] = stores[i].hold_lease(f"worker-{i}", ttl=30)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert held.count(True) == 1


def test_postgres_restart_while_running(tmp_path: Path) -> None:
    """PostgreSQL stops under a running store: writes fail with StoreError (nothing acked),
    and once it is back the same store object writes again, each record once."""
    import time

    from pgserver import PgServer

    server = PgServer.create()
    try:
        s = PgStore(server.new_database(), tmp_path / "aux.sqlite3", connect_timeout=2.0)
        try:
            assert s.store_usage(CAC, [session(1), session(2)], 1.0).watermark == 2
            server.stop()
            with pytest.raises(StoreError):
                s.store_usage(CAC, [session(3)], 1.0)
            server.start()
            deadline = time.monotonic() + 30
            while True:  # the pool replaces its broken connections
                try:
                    r = s.store_usage(CAC, [session(2), session(3)], 1.0)
                    break
                except StoreError:
                    assert time.monotonic() < deadline, "the store never came back"
                    time.sleep(0.1)
            assert r.watermark == 3 and s.count_records(CAC) == 3
        finally:
            s.close()
    finally:
        server.destroy()


# a message: (cac index, [(seq, id variant)]); variant 0 is the record's own id, 1 another
# new id for that seq, 2 an id shared by every CAC (stored once, a conflict elsewhere)
_MESSAGES = st.lists(st.tuples(st.integers(0, 2),
                               st.lists(st.tuples(st.integers(1, 12), st.integers(0, 2)),
                                        max_size=6)),
                     max_size=8)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_MESSAGES, min_size=1, max_size=5))
def test_a_whole_batch_at_once_equals_its_cacs_one_by_one(
        store: UsageStore, batches: list[list[tuple[int, list[tuple[int, int]]]]]) -> None:
    """store_usage_many (PostgreSQL: five statements for the whole batch) leaves the store
    and answers as store_usage called for each message in cac_id order: the same
    watermarks, the same rows, the same stored / duplicate / conflict counts per CAC."""
    runs = {}
    for how in ("many", "one"):
        ns = f"{how}-{uuid.uuid4().hex[:10]}"  # one store for all examples: names of its own
        cacs = [f"{ns}-cac{i}" for i in range(3)]

        def rec(cac: str, seq: int, variant: int, ns: str = ns) -> Any:
            id_ = (None, f"{cac}-alt-{seq}", f"{ns}-shared-{seq}")[variant]
            return session(seq, cac, id_=id_)

        totals: dict[int, list[int]] = {i: [0, 0, 0] for i in range(3)}
        last: dict[int, int] = {}
        for batch in batches:
            usage = [(cacs[i], [rec(cacs[i], q, v) for q, v in recs]) for i, recs in batch]
            if how == "many":
                results = store.store_usage_many(usage, 1.0)
            else:
                with store.transaction():
                    results = [(c, store.store_usage(c, r, 1.0))
                               for c, r in sorted(usage, key=lambda u: u[0])]
            for c, r in results:
                i = cacs.index(c)
                last[i] = r.watermark
                totals[i][0] += r.stored
                totals[i][1] += r.duplicates
                totals[i][2] += r.conflicts
        stored = {i: [(x["seq"], x["id"].replace(ns, "")) for x in store.records(cacs[i])]
                  for i in range(3)}
        runs[how] = (last, totals, stored, {i: store.watermark(cacs[i]) for i in range(3)})
    assert runs["many"] == runs["one"]
