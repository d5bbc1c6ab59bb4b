"""The hub's store: SQLite in WAL mode, the system of record for fleet-wide usage.

- ``records``: every usage record exactly once (``INSERT OR IGNORE`` on its id).
- ``watermarks``: per CAC, the highest seq such that records 1..seq are all stored; this is
  what the hub acknowledges. It only moves forward, inside the same transaction that
  stored the records, so an ack never names a record that a crash could lose.
- ``cacs``: fleet state kept across restarts (first/last seen, latest status and health).

The watermark is advanced incrementally: from the stored watermark, walk the seqs above it
(index ``(cac_id, seq)``) while they are contiguous. The seqs held back by a gap are the
"pending" set; they live in the records table itself, so nothing needs rebuilding after a
restart, and a walk costs only as many rows as the watermark advances. Because all of it is
in the database, several hub processes may share one store file (shared subscriptions on
one machine): SQLite serialises their ``BEGIN IMMEDIATE`` transactions.

Threading: a ``Store`` is one sqlite3 connection, used by one thread at a time. In the hub
the ingest worker thread owns the writing Store; API handlers open short-lived readers in
worker threads (``open_reader``). Writes use ``synchronous=FULL``: a commit is on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from hub import lease
from hub.fleet import CacRecord
from hub.schema import SCHEMA as _EXTRA_SCHEMA
from wire.messages import Health, Record, Status, WireError, decode, encode

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 10.0
SCHEMA_VERSION = 1

# CONTRACT §5: the fields of a closed session record, in this order, then the rest
SESSION_FIELDS = ("id", "station", "started_at", "ended_at", "billed_seconds", "fee",
                  "currency")
_HIDDEN_FIELDS = frozenset({"type", "cac_id"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id TEXT PRIMARY KEY,
    cac_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    at TEXT NOT NULL,
    json TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_cac_seq ON records (cac_id, seq);
CREATE TABLE IF NOT EXISTS watermarks (
    cac_id TEXT PRIMARY KEY,
    acked_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cacs (
    cac_id TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL,
    last_status TEXT,
    last_health TEXT,
    health_seen REAL
);
"""

# Several workers may write the same row: keep the newest of each part.
_UPSERT_CAC = """
INSERT INTO cacs (cac_id, first_seen, last_seen, last_status, last_health, health_seen)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (cac_id) DO UPDATE SET
    first_seen = MIN(cacs.first_seen, excluded.first_seen),
    last_seen = MAX(COALESCE(cacs.last_seen, excluded.last_seen),
                    COALESCE(excluded.last_seen, cacs.last_seen)),
    last_status = COALESCE(excluded.last_status, cacs.last_status),
    last_health = CASE
        WHEN excluded.health_seen IS NOT NULL
             AND (cacs.health_seen IS NULL OR excluded.health_seen > cacs.health_seen)
        THEN excluded.last_health ELSE cacs.last_health END,
    health_seen = MAX(COALESCE(cacs.health_seen, excluded.health_seen),
                      COALESCE(excluded.health_seen, cacs.health_seen))
"""

_json_encoder = msgspec.json.Encoder()


class StoreError(RuntimeError):
    """The store cannot be opened or written (disk full, locked, not a database, ...)."""


@dataclass(frozen=True)
class UsageResult:
    """What one ``store_usage`` call did."""

    watermark: int
    stored: int = 0
    duplicates: int = 0
    conflicts: int = 0  # an id known with another CAC or seq, or a new id reusing a seq


def advance(wm: int, seqs_above: Iterable[int]) -> tuple[int, int]:
    """(new watermark, seqs passed over that two ids share): the stored seqs above ``wm``,
    in order, walked while contiguous (either engine)."""
    repeated = 0
    start = wm
    for seq in seqs_above:
        if seq == wm and seq > start:
            repeated += 1
        elif seq == wm + 1:
            wm = seq
        else:
            break
    return wm, repeated


class AdminStore(Protocol):
    """Where hub/schema.py's tables live: ``Store`` itself (SQLite) or
    ``hub.pgaux.PgAux`` (PostgreSQL); ``db`` is sqlite3-shaped in both."""

    @property
    def db(self) -> Any: ...
    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...
    def close(self) -> None: ...


class UsageStore(Protocol):
    """What the hub asks of its store, whatever the engine: ``Store`` (SQLite in data_dir)
    or ``hub.pgstore.PgStore`` (PostgreSQL, ``[store] url``)."""

    def transaction(self) -> contextlib.AbstractContextManager[Any]: ...
    def store_usage(self, cac_id: str, records: Sequence[Record],
                    received_at: float) -> UsageResult: ...
    def store_usage_many(self, usage: Sequence[tuple[str, Sequence[Record]]],
                         received_at: float) -> list[tuple[str, UsageResult]]: ...
    def watermark(self, cac_id: str) -> int: ...
    def watermarks(self) -> dict[str, int]: ...
    def records(self, cac_id: str, after_seq: int = 0) -> list[dict[str, Any]]: ...
    def sessions(self, cac_id: str) -> list[dict[str, Any]]: ...
    def sessions_page(self, cac_id: str, after_seq: int, limit: int
                      ) -> tuple[list[dict[str, Any]], int | None]: ...
    def count_records(self, cac_id: str | None = None) -> int: ...
    def has_cac(self, cac_id: str) -> bool: ...
    def save_cacs(self, rows: Iterable[CacRecord]) -> int: ...
    def load_cacs(self) -> list[CacRecord]: ...
    def close(self) -> None: ...
    def hold_lease(self, holder: str, ttl: float = ...) -> bool: ...
    def release_lease(self, holder: str) -> None: ...

    @property
    def aux(self) -> AdminStore:
        """The store of the tables kept through a connection of their own (hub/schema.py)."""
        ...

    @property
    def db(self) -> Any: ...

    @property
    def shared_reads(self) -> bool:
        """True: any thread may read through this object (else open a reader per thread)."""
        ...


def open_store(db_path: Path, url: str | None = None) -> UsageStore:
    """The hub's store: SQLite at ``db_path``, or PostgreSQL at ``url`` (``[store] url``;
    every table then lives there, hub/pgaux.py)."""
    if url is None:
        return Store(db_path)
    from hub.pgstore import PgStore  # psycopg is only loaded when it is used

    return PgStore(url, db_path)


def open_admin(db_path: Path, url: str | None = None) -> AdminStore:
    """hub/schema.py's tables for the dashboard and the CLI: SQLite at ``db_path``, or the
    PostgreSQL store at ``url`` (its own small pool, closed with it)."""
    if url is None:
        return Store(db_path)
    from hub.pgaux import PgAux
    from hub.pgstore import PgStore

    return PgAux(PgStore(url, max_size=2), owned=True)


def _record_type(rec: Record) -> str:
    tag = rec.__struct_config__.tag
    return str(tag)


def session_view(obj: dict[str, Any]) -> dict[str, Any]:
    """A stored session record in CONTRACT §5 shape (its fields first, then the rest)."""
    out = {k: obj.get(k) for k in SESSION_FIELDS}
    for k, v in obj.items():
        if k not in out and k not in _HIDDEN_FIELDS:
            out[k] = v
    return out


class Store:
    """One connection to the hub's SQLite store; see the module docstring."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        try:
            if create:
                _private_store(path)
            elif not path.exists():
                raise StoreError(f"no store at {path}")
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                       timeout=BUSY_TIMEOUT_SECONDS)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from None
        self._depth = 0
        self._known_cacs: set[str] = set()  # CACs known to have a row in ``cacs``
        self._tx_cacs: set[str] = set()  # rows added by the open transaction
        try:
            self._setup(create)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot use the store {path}: {exc}") from None
        except StoreError:
            self._db.close()
            raise

    def _setup(self, create: bool) -> None:
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: SQLite cannot use WAL here (journal mode {mode})")
        self._db.execute("PRAGMA synchronous=FULL")
        if create:
            with self.transaction():
                for stmt in (_SCHEMA + _EXTRA_SCHEMA).split(";"):
                    if stmt.strip():
                        self._db.execute(stmt)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def hold_lease(self, holder: str, ttl: float = lease.TTL_SECONDS) -> bool:
        """Take or renew the upkeep lease (hub/lease.py) on this connection."""
        with self.transaction():
            return lease.hold_sqlite(self._db, holder, ttl)

    def release_lease(self, holder: str) -> None:
        with self.transaction():
            lease.release_sqlite(self._db, holder)

    shared_reads = False  # one connection, one thread at a time: readers use open_reader

    @property
    def aux(self) -> Store:
        """This store itself: SQLite keeps every table (see ``UsageStore.aux``)."""
        return self

    @property
    def db(self) -> sqlite3.Connection:
        """The connection, for the modules that keep their own tables (hub/schema.py)."""
        return self._db

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One write transaction (nested calls join the outer one); commit is durable."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot start a transaction: {exc}") from None
        self._depth = 1
        self._tx_cacs.clear()
        try:
            yield
            self._db.execute("COMMIT")
            self._known_cacs |= self._tx_cacs
        except BaseException as exc:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("rollback failed")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"store write failed: {exc}") from None
            raise
        finally:
            self._depth = 0

    # ------------------------------------------------------------------ usage

    def store_usage_many(self, usage: Sequence[tuple[str, Sequence[Record]]],
                         received_at: float) -> list[tuple[str, UsageResult]]:
        """Several CACs' batches in one transaction, in cac_id order (as workers sharing a
        store lock watermark rows); a CAC's last result holds its watermark."""
        with self.transaction():
            return [(cac_id, self.store_usage(cac_id, records, received_at))
                    for cac_id, records in sorted(usage, key=lambda u: u[0])]

    def store_usage(self, cac_id: str, records: Sequence[Record],
                    received_at: float) -> UsageResult:
        """Store one batch from ``cac_id`` (the caller checked every record's cac_id).

        Returns the CAC's watermark as it is once the transaction commits.
        """
        stored = duplicates = conflicts = 0
        db = self._db
        with self.transaction():
            wm = self._watermark(cac_id)
            if cac_id not in self._known_cacs:
                db.execute("INSERT OR IGNORE INTO cacs (cac_id, first_seen) VALUES (?, ?)",
                           (cac_id, received_at))
                self._tx_cacs.add(cac_id)  # known once committed
            for rec in records:
                cur = db.execute(
                    "INSERT OR IGNORE INTO records "
                    "(id, cac_id, seq, type, at, json, received_at) VALUES (?,?,?,?,?,?,?)",
                    (rec.id, cac_id, rec.seq, _record_type(rec), rec.at,
                     _json_encoder.encode(rec).decode(), received_at))
                if cur.rowcount == 1:
                    stored += 1
                    if rec.seq <= wm:  # a new id for a seq already stored
                        conflicts += 1
                    continue
                row = db.execute("SELECT cac_id, seq FROM records WHERE id = ?",
                                 (rec.id,)).fetchone()
                if row is not None and row[0] == cac_id and row[1] == rec.seq:
                    duplicates += 1
                else:
                    conflicts += 1
            new_wm, repeated = self._advance(cac_id, wm)
            conflicts += repeated
            if new_wm != wm:
                db.execute(
                    "INSERT INTO watermarks (cac_id, acked_seq) VALUES (?, ?) "
                    "ON CONFLICT (cac_id) DO UPDATE SET acked_seq = excluded.acked_seq",
                    (cac_id, new_wm))
        return UsageResult(new_wm, stored, duplicates, conflicts)

    def _advance(self, cac_id: str, wm: int) -> tuple[int, int]:
        """(new watermark, seqs passed over that two ids share).

        Each row is passed over once in its life (when the watermark reaches it), so a seq
        reused above the watermark is counted as a conflict exactly once, then.
        """
        cur = self._db.execute(
            "SELECT seq FROM records WHERE cac_id = ? AND seq > ? ORDER BY seq", (cac_id, wm))
        try:
            return advance(wm, (seq for (seq,) in cur))  # read only as far as the walk goes
        finally:
            cur.close()

    def _watermark(self, cac_id: str) -> int:
        row = self._db.execute("SELECT acked_seq FROM watermarks WHERE cac_id = ?",
                               (cac_id,)).fetchone()
        return int(row[0]) if row else 0

    def watermark(self, cac_id: str) -> int:
        """The highest seq such that all of 1..seq from this CAC are stored (0: none)."""
        try:
            return self._watermark(cac_id)
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None

    def watermarks(self) -> dict[str, int]:
        return {str(c): int(s) for c, s in self._query(
            "SELECT cac_id, acked_seq FROM watermarks")}

    # ------------------------------------------------------------------ reads

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None

    def records(self, cac_id: str, after_seq: int = 0) -> list[dict[str, Any]]:
        """Every stored record of a CAC with seq > after_seq, by seq (wire form)."""
        rows = self._query("SELECT json FROM records WHERE cac_id = ? AND seq > ? "
                           "ORDER BY seq, id", (cac_id, after_seq))
        return [msgspec.json.decode(r[0]) for r in rows]

    def sessions(self, cac_id: str) -> list[dict[str, Any]]:
        """Every closed session record from this CAC, each once, by seq (CONTRACT §5)."""
        rows = self._query("SELECT json FROM records WHERE cac_id = ? AND type = 'session' "
                           "ORDER BY seq, id", (cac_id,))
        return [session_view(msgspec.json.decode(r[0])) for r in rows]

    def sessions_page(self, cac_id: str, after_seq: int, limit: int
                      ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` session records with seq > after_seq, by seq, and the seq to ask
        ``after`` for the next page (None: this was the last page)."""
        rows = self._query("SELECT seq, json FROM records WHERE cac_id = ? AND type = 'session' "
                           "AND seq > ? ORDER BY seq, id LIMIT ?", (cac_id, after_seq, limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        page = [session_view(msgspec.json.decode(r[1])) for r in rows]
        return page, (int(rows[-1][0]) if more and rows else None)

    def count_records(self, cac_id: str | None = None) -> int:
        if cac_id is None:
            return int(self._query("SELECT COUNT(*) FROM records")[0][0])
        return int(self._query("SELECT COUNT(*) FROM records WHERE cac_id = ?",
                               (cac_id,))[0][0])

    def has_cac(self, cac_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM cacs WHERE cac_id = ?", (cac_id,)))

    # ------------------------------------------------------------------ fleet rows

    def save_cacs(self, rows: Iterable[CacRecord]) -> int:
        """Write fleet rows (newest part wins, so workers sharing a store do not regress)."""
        params = [
            (r.cac_id, r.first_seen, r.last_seen,
             encode(r.status).decode() if r.status is not None else None,
             encode(r.health).decode() if r.health is not None else None,
             r.health_seen)
            for r in rows
        ]
        if params:
            with self.transaction():
                self._db.executemany(_UPSERT_CAC, params)
        return len(params)

    def load_cacs(self) -> list[CacRecord]:
        """Every fleet row; a status or health that no longer decodes is dropped (logged)."""
        out = []
        for cac_id, first, last, status, health, health_seen in self._query(
                "SELECT cac_id, first_seen, last_seen, last_status, last_health, health_seen "
                "FROM cacs ORDER BY cac_id"):
            out.append(CacRecord(
                cac_id=cac_id, first_seen=first, last_seen=last,
                status=_decode_or_none(status, Status, cac_id),
                health=_decode_or_none(health, Health, cac_id),
                health_seen=health_seen,
            ))
        return out


def _private_store(path: Path) -> None:
    """The store holds technicians' hashes and every session: its directory is made 0700 and
    the database file 0600 from creation (SQLite gives its -wal/-shm files the same mode);
    a store found readable by others is narrowed (issue 16: user nobody read the hashes)."""
    new_dir = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if new_dir:
        os.chmod(path.parent, 0o700)  # whatever the umask
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(p).st_mode & 0o077:
                os.chmod(p, 0o600)


def _decode_or_none(text: str | None, cls: type[Status] | type[Health],
                    cac_id: str) -> Any:
    if text is None:
        return None
    try:
        return decode(text.encode(), cls)
    except WireError as exc:
        log.warning("stored %s of %s is unreadable, dropped: %s", cls.__name__, cac_id, exc)
        return None


def open_reader(path: Path) -> Store:
    """A store connection for reading only (for API requests, in a worker thread)."""
    return Store(path, create=False)
