"""The upkeep lease (CONTRACT §9): of the hub workers sharing a store, the one holding the
lease row ``leases.name = 'upkeep'`` alone raises alarms and expires commands.

A worker renews its lease every ``RENEW_SECONDS`` for ``TTL_SECONDS``; a lease not renewed
in time may be taken by any worker, so when its holder dies (kill -9, machine lost) another
one holds it within ``TTL_SECONDS + RENEW_SECONDS`` (under the 30 s of the contract). A
worker that stops cleanly releases it at once. Taking and renewing are one statement (an
upsert whose ``WHERE`` lets it through only for the holder or over an expired lease), so two
workers never both hold it. Time is the database's clock on PostgreSQL (workers' clocks may
differ) and the machine's on SQLite (workers on one machine share one data_dir).
"""

from __future__ import annotations

import sqlite3
import time

NAME = "upkeep"
TTL_SECONDS = 15.0
RENEW_SECONDS = 5.0

SQLITE_TABLE = """
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
)"""

# %s placeholders (PostgreSQL); the SQLite form below uses ?
PG_HOLD = """
INSERT INTO leases (name, holder, expires_at)
VALUES (%(name)s, %(holder)s, extract(epoch FROM clock_timestamp()) + %(ttl)s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder
   OR leases.expires_at < extract(epoch FROM clock_timestamp())
RETURNING holder
"""

_SQLITE_HOLD = """
INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :now + :ttl)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE leases.holder = excluded.holder OR leases.expires_at < :now
RETURNING holder
"""


def hold_sqlite(db: sqlite3.Connection, holder: str, ttl: float = TTL_SECONDS,
                name: str = NAME) -> bool:
    """Take or renew the lease on a SQLite store (run in a write transaction)."""
    db.execute(SQLITE_TABLE)
    row = db.execute(_SQLITE_HOLD, {"name": name, "holder": holder, "now": time.time(),
                                    "ttl": ttl}).fetchone()
    return row is not None


def release_sqlite(db: sqlite3.Connection, holder: str, name: str = NAME) -> None:
    db.execute(SQLITE_TABLE)
    db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))
