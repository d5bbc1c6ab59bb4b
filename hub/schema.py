"""Tables of the hub store beyond usage and fleet rows: health history, alarms, commands,
the audit trail and technician accounts. Created with the rest by ``hub.store.Store``."""

from __future__ import annotations

METRICS = ("cpu", "mem", "disk", "temp", "backlog")  # health history series


def _history_table(name: str) -> str:
    cols = "".join(f", {m}_min REAL, {m}_avg REAL, {m}_max REAL" for m in METRICS)
    return (f"CREATE TABLE IF NOT EXISTS {name} (cac_id TEXT NOT NULL, t INTEGER NOT NULL, "
            f"n INTEGER NOT NULL{cols}, PRIMARY KEY (cac_id, t)) WITHOUT ROWID")


SCHEMA = f"""
{_history_table("health_1m")};
CREATE INDEX IF NOT EXISTS health_1m_by_t ON health_1m (t);
{_history_table("health_1h")};
CREATE INDEX IF NOT EXISTS health_1h_by_t ON health_1h (t);
CREATE INDEX IF NOT EXISTS records_by_type_at ON records (type, at);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cac_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    raised_at REAL NOT NULL,
    cleared_at REAL,
    acked_by TEXT,
    acked_at REAL
);
CREATE INDEX IF NOT EXISTS alarms_open ON alarms (cleared_at);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    cac_id TEXT NOT NULL,
    station TEXT,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    sent_by TEXT NOT NULL,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,
    answered_at REAL,
    message TEXT NOT NULL DEFAULT '',
    sends INTEGER NOT NULL DEFAULT 0,
    last_sent_at REAL
);
CREATE INDEX IF NOT EXISTS commands_by_cac ON commands (cac_id, status);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""
SCHEMA += """
CREATE TABLE IF NOT EXISTS api_tokens (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
);
"""
