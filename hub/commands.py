"""Remote commands to a CAC or one of its stations, and the audit trail.

A technician's command is stored ``pending`` with who sent it (and an audit entry), then
published on ``cac/v1/{id}/cmd`` (QoS 1). The agent executes it and answers on ``cmd/ack``
with the same id: the ingest worker marks it ``done`` or ``failed`` (``record_ack``). When a
CAC comes back online its pending commands are published again (``pending``); the agent
answers a repeated id without executing it twice. A command unanswered after
``[dashboard] command_timeout_seconds`` is marked ``expired`` (a late answer still counts).
Each command carries ``expires_at`` = first sent + that timeout: an agent that gets it later
(a QoS 1 message queued in the broker for days) answers ``expired`` and does not run it.

| name | args |
| --- | --- |
| ``lock`` | ``reason`` (optional) |
| ``unlock`` | |
| ``message`` | ``text``, ``seconds`` (optional) |
| ``set_tariff`` | ``tariff``: an agent config's ``[tariff]`` table |
| ``set_catalogue`` | ``catalogue``: an agent config's ``[[catalogue]]`` list (issue 17) |
| ``resync_content`` | |
| ``restart`` | |
"""

from __future__ import annotations

import json
import re
import sqlite3
import tomllib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wire.catalogue import parse_catalogue as check_catalogue
from wire.config_check import ConfigError
from wire.messages import Command, CommandAck, encode
from wire.topics import Kind, cac_topic

NAMES = ("lock", "unlock", "message", "set_tariff", "set_catalogue", "resync_content",
         "restart")
STATION_NAMES = frozenset({"lock", "unlock", "message"})  # may target one station
PENDING, DONE, FAILED, EXPIRED = "pending", "done", "failed", "expired"
STATION_RE = re.compile(r"[a-z0-9-]{1,32}")
MAX_TEXT = 500
DEFAULT_TIMEOUT_SECONDS = 3600.0  # [dashboard] command_timeout_seconds (hub.config)


class CommandError(ValueError):
    """A command that cannot be sent as asked (bad name or arguments)."""


@dataclass(frozen=True)
class CommandRow:
    id: str
    cac_id: str
    station: str | None
    name: str
    args: dict[str, Any]
    sent_by: str
    created_at: float
    status: str
    answered_at: float | None
    message: str
    sends: int

    def wire(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> tuple[str, bytes]:
        """(topic, payload) to publish; the command expires ``timeout`` seconds after it
        was first sent (CONTRACT §7), however often it is sent again."""
        return (cac_topic(self.cac_id, Kind.CMD),
                encode(Command(id=self.id, name=self.name, args=self.args,
                               station=self.station,
                               expires_at=expires_at(self.created_at, timeout))))


def expires_at(created_at: float, timeout: float) -> str:
    """The command's ``expires_at``: UTC ISO 8601, ``timeout`` after it was created."""
    return datetime.fromtimestamp(created_at + timeout, UTC).isoformat(timespec="seconds")


def build_args(name: str, form: Mapping[str, str]) -> tuple[dict[str, Any], str | None]:
    """(args, station) from a dashboard form; raises CommandError."""
    if name not in NAMES:
        raise CommandError(f"unknown command {name[:40]!r}")
    station = (form.get("station") or "").strip() or None
    if station is not None:
        if name not in STATION_NAMES:
            raise CommandError(f"{name} acts on the whole CAC, not on a station")
        if not STATION_RE.fullmatch(station):
            raise CommandError("a station id is [a-z0-9-]{1,32}")
    args: dict[str, Any] = {}
    if name == "lock" and form.get("reason", "").strip():
        args["reason"] = form["reason"].strip()[:MAX_TEXT]
    elif name == "message":
        text = form.get("text", "")
        if len(text) > MAX_TEXT:
            raise CommandError(f"the message is longer than {MAX_TEXT} characters")
        args["text"] = text
        seconds = form.get("seconds", "").strip()
        if seconds:
            if not re.fullmatch(r"[0-9]{1,5}", seconds) or not 1 <= int(seconds) <= 86400:
                raise CommandError("seconds must be a whole number from 1 to 86400")
            args["seconds"] = int(seconds)
    elif name == "set_tariff":
        args["tariff"] = parse_tariff(form.get("tariff", ""))
    elif name == "set_catalogue":
        args["catalogue"] = parse_catalogue(form.get("catalogue", ""))
    return args, station


def parse_catalogue(text: str) -> list[Any]:
    """The ``[[catalogue]]`` tables as TOML, checked as the agent checks its config file
    (wire/catalogue.py): a bad item is refused here, naming the key, before anything is
    sent; the agent checks again when it applies it."""
    if not text.strip():
        raise CommandError("set_catalogue needs the [[catalogue]] tables (TOML)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"the catalogue is not valid TOML: {exc}") from None
    items = raw.get("catalogue")
    if not isinstance(items, list):
        raise CommandError("the catalogue needs [[catalogue]] tables (id, name, price, unit)")
    try:
        check_catalogue(items)
    except ConfigError as exc:
        raise CommandError(f"the catalogue: {exc}") from None
    return items


def parse_tariff(text: str) -> dict[str, Any]:
    """The ``[tariff]`` table as TOML (with or without the ``[tariff]`` header)."""
    if not text.strip():
        raise CommandError("set_tariff needs the tariff table (TOML)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CommandError(f"the tariff is not valid TOML: {exc}") from None
    table = raw.get("tariff", raw)
    if not isinstance(table, dict) or "block_price" not in table:
        raise CommandError("the tariff needs at least currency, block_minutes, block_price")
    return table


_COLS = ("id, cac_id, station, name, args, sent_by, created_at, status, answered_at, message, "
         "sends")


def _row(r: Sequence[Any]) -> CommandRow:
    return CommandRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8], r[9],
                      r[10])


def audit(db: sqlite3.Connection, who: str, action: str, target: str, now: float,
          **details: Any) -> None:
    db.execute("INSERT INTO audit (at, who, action, target, details) VALUES (?, ?, ?, ?, ?)",
               (now, who, action, target, json.dumps(details, sort_keys=True)))


def create(db: sqlite3.Connection, cac_id: str, name: str, args: dict[str, Any],
           station: str | None, who: str, now: float) -> CommandRow:
    """Store a new pending command and its audit entry (caller holds a tx)."""
    cmd_id = uuid.uuid4().hex
    db.execute(f"INSERT INTO commands ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
               (cmd_id, cac_id, station, name, json.dumps(args), who, now, PENDING, None, "",
                0))
    target = f"{cac_id}/{station}" if station else cac_id
    shown = {k: v for k, v in args.items() if k != "tariff"}
    if "tariff" in args:
        shown["tariff"] = "(table)"
    audit(db, who, f"command.{name}", target, now, command=cmd_id, **shown)
    return get(db, cmd_id)  # type: ignore[return-value]


def mark_sent(db: sqlite3.Connection, cmd_id: str, now: float) -> None:
    db.execute("UPDATE commands SET sends = sends + 1, last_sent_at = ? WHERE id = ?",
               (now, cmd_id))


def get(db: sqlite3.Connection, cmd_id: str) -> CommandRow | None:
    r = db.execute(f"SELECT {_COLS} FROM commands WHERE id = ?", (cmd_id,)).fetchone()  # noqa: S608
    return _row(r) if r else None


def pending(db: sqlite3.Connection, cac_id: str) -> list[CommandRow]:
    """The CAC's unanswered commands, oldest first (to publish again)."""
    return [_row(r) for r in db.execute(
        f"SELECT {_COLS} FROM commands WHERE cac_id = ? AND status = ? "  # noqa: S608
        "ORDER BY created_at", (cac_id, PENDING))]


def record_ack(db: sqlite3.Connection, cac_id: str, ack: CommandAck, now: float) -> bool:
    """The agent's answer; False if no command of that CAC has that id."""
    cur = db.execute("UPDATE commands SET status = ?, message = ?, answered_at = ? "
                     "WHERE id = ? AND cac_id = ? AND status IN (?, ?)",
                     (ack.status, ack.message[:MAX_TEXT], now, ack.id, cac_id, PENDING,
                      EXPIRED))
    return cur.rowcount == 1


def expire(db: sqlite3.Connection, now: float, timeout: float) -> int:
    cur = db.execute("UPDATE commands SET status = ?, message = 'no answer' "
                     "WHERE status = ? AND created_at < ?", (EXPIRED, PENDING, now - timeout))
    return int(cur.rowcount)


def listing(db: sqlite3.Connection, *, cac_id: str | None = None, limit: int = 200
            ) -> list[CommandRow]:
    where, args = ("WHERE cac_id = ?", (cac_id,)) if cac_id else ("", ())
    return [_row(r) for r in db.execute(
        f"SELECT {_COLS} FROM commands {where} ORDER BY created_at DESC LIMIT ?",  # noqa: S608
        (*args, limit))]


def audit_trail(db: sqlite3.Connection, limit: int = 500) -> list[dict[str, Any]]:
    return [{"at": r[0], "who": r[1], "action": r[2], "target": r[3],
             "details": json.loads(r[4])}
            for r in db.execute("SELECT at, who, action, target, details FROM audit "
                                "ORDER BY id DESC LIMIT ?", (limit,))]
