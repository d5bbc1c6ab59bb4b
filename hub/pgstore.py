"""The hub's store on PostgreSQL (``[store] url``): the usage store of several hub workers.

The same interface as ``hub.store.Store`` (``store_usage``, ``watermark``, ``records``,
``sessions``, ``save_cacs``, ``load_cacs``, ``transaction`` ...) and the same tables for
usage and fleet rows (``records``, ``watermarks``, ``cacs``), created by versioned
migrations (``MIGRATIONS``, table ``schema_migrations``) applied at start under a
transaction-level advisory lock, so two workers starting together apply each once.

Exact under concurrent writers (several workers, several connections):

- a record is stored once: ``records.id`` is the primary key, rows go in with
  ``INSERT ... ON CONFLICT (id) DO NOTHING`` (one statement per batch, ``unnest``);
- the watermark is advanced while holding its row lock (an upsert ``RETURNING`` it, taken
  after the batch's rows are inserted): of two transactions that store seqs of one CAC, the
  one that takes the lock second sees the first one's committed rows and its own, so the
  last to commit always advances over everything stored. READ COMMITTED is enough: each
  statement sees what committed before it.
- ``Ingest`` stores a batch's CACs in cac_id order, so two workers lock watermark rows in
  the same order and do not deadlock.

The tables the rest of the hub keeps through a raw SQLite connection (``db``: users, API
tokens, alarms, commands, health history, audit) stay in SQLite in ``data_dir`` for now
(``aux``); see the closing note of issue 19.

Threading: a ``PgStore`` may be shared by threads: each transaction holds one pooled
connection for its thread (``psycopg_pool.ConnectionPool``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from hub import lease
from hub.fleet import CacRecord
from hub.store import (
    Store,
    StoreError,
    UsageResult,
    _decode_or_none,
    _json_encoder,
    _record_type,
    session_view,
)
from wire.messages import Health, Record, Status, encode

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
MIGRATION_LOCK = 0x6361_6368_7562  # pg_advisory_xact_lock key: "cachub"

# (version, statements): applied in order, each once, in one transaction each
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, """
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    cac_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    json TEXT NOT NULL,
    received_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX records_by_cac_seq ON records (cac_id, seq);
CREATE INDEX records_by_type_at ON records (type, at);
CREATE TABLE watermarks (
    cac_id TEXT PRIMARY KEY,
    acked_seq BIGINT NOT NULL
);
CREATE TABLE cacs (
    cac_id TEXT PRIMARY KEY,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION,
    last_status TEXT,
    last_health TEXT,
    health_seen DOUBLE PRECISION
);
"""),
    (2, """
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
"""),
)

# GREATEST/LEAST ignore NULLs in PostgreSQL: the newest of each part wins
_UPSERT_CAC = """
INSERT INTO cacs (cac_id, first_seen, last_seen, last_status, last_health, health_seen)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (cac_id) DO UPDATE SET
    first_seen = LEAST(cacs.first_seen, excluded.first_seen),
    last_seen = GREATEST(cacs.last_seen, excluded.last_seen),
    last_status = COALESCE(excluded.last_status, cacs.last_status),
    last_health = CASE
        WHEN excluded.health_seen IS NOT NULL
             AND (cacs.health_seen IS NULL OR excluded.health_seen > cacs.health_seen)
        THEN excluded.last_health ELSE cacs.last_health END,
    health_seen = GREATEST(cacs.health_seen, excluded.health_seen)
"""

_INSERT_RECORDS = """
INSERT INTO records (id, cac_id, seq, type, at, json, received_at)
SELECT r.id, %s, r.seq, r.type, r.at, r.json, %s
FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[])
     WITH ORDINALITY AS r(id, seq, type, at, json, n)
ORDER BY r.n
ON CONFLICT (id) DO NOTHING
RETURNING id
"""


def redact(url: str) -> str:
    """The url without its password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparsable url>"
    return f"{info.get('host', '')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


class _Tx(threading.local):
    conn: psycopg.Connection[Any] | None = None
    depth: int = 0
    cacs: set[str] | None = None  # rows of ``cacs`` added by the open transaction


class PgStore:
    """The usage store on PostgreSQL; see the module docstring."""

    def __init__(self, url: str, aux_path: Path | None = None, *, max_size: int = 4,
                 connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> None:
        self.url = url
        self._aux: Store | None = None
        self._where = redact(url)
        self._tx = _Tx()
        self._known_cacs: set[str] = set()  # CACs known to have a row in ``cacs``
        self._pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False,
                                    timeout=connect_timeout,
                                    kwargs={"autocommit": True})
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise StoreError(f"cannot connect to the PostgreSQL store {self._where} within "
                             f"{connect_timeout:g} s (is it running, is the url "
                             "right?)") from None
        try:
            self.migrate()
            self._aux = Store(aux_path) if aux_path is not None else None
        except BaseException:
            self._pool.close()
            raise

    # ------------------------------------------------------------------ setup

    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; returns the versions applied."""
        applied: list[int] = []
        with self.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                         "PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            have = {int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in MIGRATIONS:
                if version in have:
                    continue
                for stmt in sql.split(";"):
                    if stmt.strip():
                        conn.execute(stmt.encode())
                conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)",
                             (version,))
                applied.append(version)
        if applied:
            log.info("PostgreSQL store %s: migrations %s applied", self._where, applied)
        return applied

    def close(self) -> None:
        self._pool.close()
        if self._aux is not None:
            self._aux.close()

    def __enter__(self) -> PgStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    shared_reads = True  # each transaction takes a pooled connection for its thread

    @property
    def aux(self) -> Store:
        """The SQLite store in data_dir that keeps the hub's other tables (see above)."""
        if self._aux is None:
            raise StoreError("this PostgreSQL store was opened without a data_dir store")
        return self._aux

    @property
    def db(self) -> Any:
        """The connection of the other tables (``hub.schema``): the aux SQLite store's."""
        return self.aux.db

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction on one pooled connection (nested calls join the outer one)."""
        tx = self._tx
        if tx.conn is not None:
            tx.depth += 1
            try:
                yield tx.conn
            finally:
                tx.depth -= 1
            return
        try:
            with self._pool.connection() as conn:
                with conn.transaction():
                    tx.conn, tx.depth, tx.cacs = conn, 1, set()
                    yield conn
                self._known_cacs |= tx.cacs  # committed
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL store {self._where}: {exc}".strip()) from None
        except PoolTimeout:
            raise StoreError(f"PostgreSQL store {self._where}: no connection within "
                             f"{CONNECT_TIMEOUT_SECONDS:.0f} s") from None
        finally:
            tx.conn, tx.depth, tx.cacs = None, 0, None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.transaction() as conn:
            return conn.execute(sql, args).fetchall()

    # ------------------------------------------------------------------ usage

    def store_usage(self, cac_id: str, records: Sequence[Record],
                    received_at: float) -> UsageResult:
        """Store one batch from ``cac_id``; the watermark as it is once this commits."""
        with self.transaction() as conn:
            if cac_id not in self._known_cacs:
                conn.execute("INSERT INTO cacs (cac_id, first_seen) VALUES (%s, %s) "
                             "ON CONFLICT (cac_id) DO NOTHING", (cac_id, received_at))
                if self._tx.cacs is not None:
                    self._tx.cacs.add(cac_id)
            ids = [r.id for r in records]
            inserted = {row[0] for row in conn.execute(_INSERT_RECORDS, (
                cac_id, received_at, ids, [r.seq for r in records],
                [_record_type(r) for r in records], [r.at for r in records],
                [_json_encoder.encode(r).decode() for r in records]))}
            # the row lock is taken after the inserts (see the module docstring): the upsert
            # locks the row, new or not, and returns its latest committed value
            wm = int(conn.execute(
                "INSERT INTO watermarks (cac_id, acked_seq) VALUES (%s, 0) "
                "ON CONFLICT (cac_id) DO UPDATE SET acked_seq = watermarks.acked_seq "
                "RETURNING acked_seq", (cac_id,)).fetchone()[0])  # type: ignore[index]
            stored = duplicates = conflicts = 0
            others = [r for r in records if r.id not in inserted]
            known: dict[str, tuple[str, int]] = {}
            if others:
                known = {i: (c, int(s)) for i, c, s in conn.execute(
                    "SELECT id, cac_id, seq FROM records WHERE id = ANY(%s)",
                    ([r.id for r in others],))}
            for rec in records:
                if rec.id in inserted and rec.id not in known:
                    known[rec.id] = (cac_id, rec.seq)  # a repeat in this batch: a duplicate
                    stored += 1
                    if rec.seq <= wm:  # a new id for a seq already stored
                        conflicts += 1
                elif known.get(rec.id) == (cac_id, rec.seq):
                    duplicates += 1
                else:
                    conflicts += 1
            new_wm, repeated = self._advance(conn, cac_id, wm)
            if new_wm != wm:
                conn.execute("UPDATE watermarks SET acked_seq = %s WHERE cac_id = %s",
                             (new_wm, cac_id))
        return UsageResult(new_wm, stored, duplicates, conflicts + repeated)

    @staticmethod
    def _advance(conn: psycopg.Connection[Any], cac_id: str, wm: int) -> tuple[int, int]:
        """(new watermark, seqs passed over that two ids share), as ``Store._advance``."""
        repeated = 0
        start = wm
        with conn.cursor() as cur:
            cur.execute("SELECT seq FROM records WHERE cac_id = %s AND seq > %s ORDER BY seq",
                        (cac_id, wm))
            for (seq,) in cur:
                if seq == wm and seq > start:
                    repeated += 1
                elif seq == wm + 1:
                    wm = seq
                else:
                    break
        return wm, repeated

    def watermark(self, cac_id: str) -> int:
        rows = self._query("SELECT acked_seq FROM watermarks WHERE cac_id = %s", (cac_id,))
        return int(rows[0][0]) if rows else 0

    def watermarks(self) -> dict[str, int]:
        return {str(c): int(s) for c, s in self._query(
            "SELECT cac_id, acked_seq FROM watermarks WHERE acked_seq > 0")}

    # ------------------------------------------------------------------ reads

    def records(self, cac_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        rows = self._query("SELECT json FROM records WHERE cac_id = %s AND seq > %s "
                           "ORDER BY seq, id", (cac_id, after_seq))
        return [msgspec.json.decode(r[0]) for r in rows]

    def sessions(self, cac_id: str) -> list[dict[str, Any]]:
        rows = self._query("SELECT json FROM records WHERE cac_id = %s AND type = 'session' "
                           "ORDER BY seq, id", (cac_id,))
        return [session_view(msgspec.json.decode(r[0])) for r in rows]

    def sessions_page(self, cac_id: str, after_seq: int, limit: int
                      ) -> tuple[list[dict[str, Any]], int | None]:
        rows = self._query("SELECT seq, json FROM records WHERE cac_id = %s "
                           "AND type = 'session' AND seq > %s ORDER BY seq, id LIMIT %s",
                           (cac_id, after_seq, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        page = [session_view(msgspec.json.decode(r[1])) for r in rows]
        return page, (int(rows[-1][0]) if more and rows else None)

    def count_records(self, cac_id: str | None = None) -> int:
        if cac_id is None:
            return int(self._query("SELECT COUNT(*) FROM records")[0][0])
        return int(self._query("SELECT COUNT(*) FROM records WHERE cac_id = %s",
                               (cac_id,))[0][0])

    def has_cac(self, cac_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM cacs WHERE cac_id = %s", (cac_id,)))

    # ------------------------------------------------------------------ upkeep lease

    def hold_lease(self, holder: str, ttl: float = lease.TTL_SECONDS,
                   name: str = lease.NAME) -> bool:
        """Take or renew the lease (hub/lease.py); True while ``holder`` holds it."""
        with self.transaction() as conn:
            row = conn.execute(lease.PG_HOLD, {"name": name, "holder": holder,
                                               "ttl": ttl}).fetchone()
        return row is not None

    def release_lease(self, holder: str, name: str = lease.NAME) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM leases WHERE name = %s AND holder = %s",
                         (name, holder))

    # ------------------------------------------------------------------ fleet rows

    def save_cacs(self, rows: Iterable[CacRecord]) -> int:
        params = [
            (r.cac_id, r.first_seen, r.last_seen,
             encode(r.status).decode() if r.status is not None else None,
             encode(r.health).decode() if r.health is not None else None,
             r.health_seen)
            for r in sorted(rows, key=lambda r: r.cac_id)  # one lock order for all workers
        ]
        if params:
            with self.transaction() as conn, conn.cursor() as cur:
                cur.executemany(_UPSERT_CAC, params)
        return len(params)

    def load_cacs(self) -> list[CacRecord]:
        return [CacRecord(cac_id=cac_id, first_seen=first, last_seen=last,
                          status=_decode_or_none(status, Status, cac_id),
                          health=_decode_or_none(health, Health, cac_id),
                          health_seen=health_seen)
                for cac_id, first, last, status, health, health_seen in self._query(
                    "SELECT cac_id, first_seen, last_seen, last_status, last_health, "
                    "health_seen FROM cacs ORDER BY cac_id")]
