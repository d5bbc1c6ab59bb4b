"""The agent's ledger: every money event, durable, numbered, kept until the hub has it.

Layout in ``data_dir``:

- ``ledger.json``: a TinyDB database on ``AtomicJSONStorage`` with two small tables:
  ``state`` (one document: next sequence number, highest acknowledged one, checkpoints of
  active sessions) and ``vouchers`` (live vouchers, document id = the code's value).
- ``outbox/<first seq>.jsonl``: records not yet acknowledged by the hub, append-only
  segments (``agent.outbox``). A write's cost does not depend on how many there are.
- ``archive/YYYY-MM-DD.jsonl``: acknowledged records, by the local day they happened,
  appended and fsync'd *before* the watermark moves past them. A crash between the two
  leaves a record in both places; readers deduplicate by id.

Every change commits with one atomic write of ``ledger.json``: a session close removes the
session's checkpoint, spends its voucher and numbers its record in the same write. The
record itself is appended to the outbox segment and fsync'd just before; a crash between the
two leaves a line with ``seq >= next_seq``, which the next start cuts off (the write was
never answered). Durability order of a money write: segment append, fsync; temp file, fsync,
rename, directory fsync (3 fsyncs; 4 when a new segment starts).

Voucher changes are the meter's rules (``VoucherEntry.reserve``/``release``/``void``,
``Voucher.spend``): the ledger stores their results and never edits a voucher's fields.

A data directory written before the segments (records in an ``outbox`` table of
``ledger.json``) is migrated on start: the records are written to a segment (atomically),
then the table leaves ``ledger.json``; a crash in between redoes it from the table.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from tinydb import TinyDB
from tinydb.table import Table

from agent import outbox as outbox_mod
from agent.meter.vouchers import Voucher, VoucherEntry, VoucherStateError
from agent.outbox import Outbox, segment_name
from agent.storage import (
    AtomicJSONStorage,
    StorageError,
    append_lines_durable,
    atomic_write_bytes,
    fsync_dir,
    read_lines,
)
from common.codes import crockford_value

LEDGER_FILE = "ledger.json"
ARCHIVE_DIR = "archive"
LOCK_FILE = "agent.lock"
STATE_DOC = "1"
# a voucher that expired, was voided or is used up leaves the live file after this long
VOUCHER_RETENTION = timedelta(days=7)

Tables = dict[str, dict[str, Any]]
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


class LedgerError(RuntimeError):
    """The ledger cannot do what was asked (the message says why); nothing was changed."""


class LedgerLocked(LedgerError):
    """Another process holds this data directory."""


def voucher_doc_id(code: str) -> str:
    """The TinyDB document id of a canonical voucher code (its 50-bit value)."""
    return str(crockford_value(code) + 1)  # TinyDB ids start at 1


def stamp(record: dict[str, Any], seq: int, cac_id: str, tz: ZoneInfo) -> dict[str, Any]:
    """A record as the ledger stores and sends it: numbered, with its CAC and the CAC's zone
    (``tz``, so the hub counts it on the CAC's own day, CONTRACT §6)."""
    return {**record, "seq": seq, "cac_id": cac_id, "tz": tz.key}


def _apply(raw: dict[str, Any], change: Callable[[VoucherEntry], VoucherEntry]
           ) -> dict[str, Any]:
    """A stored voucher entry changed by one of the meter's voucher rules."""
    try:
        return change(VoucherEntry.from_dict(raw)).to_dict()
    except VoucherStateError as exc:
        raise LedgerError(str(exc)) from None


class Ledger:
    def __init__(self, data_dir: Path, cac_id: str, tz: ZoneInfo, *, lock: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.cac_id = cac_id
        self.tz = tz
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.archive_dir = self.data_dir / ARCHIVE_DIR
        self.archive_dir.mkdir(exist_ok=True)
        self._lock_fd: int | None = None
        if lock:
            self._take_lock()
        self.storage = AtomicJSONStorage(self.data_dir / LEDGER_FILE, owner=lock)
        self._db = TinyDB(storage=lambda: self.storage)
        try:
            self._db.storage.read()  # fail now, not on the first sale, if the file is damaged
        except BaseException:
            self.close()  # release the lock: the caller may restore the file and retry
            raise
        self._vouchers = self._table("vouchers")
        self._pending: list[tuple[int, bytes]] = []  # records numbered by the running commit
        self._box = Outbox(self.data_dir, owner=lock, segment_bytes=outbox_mod.SEGMENT_BYTES)
        try:
            self._open_outbox(owner=lock)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- housekeeping

    def _table(self, name: str) -> Table:
        return self._db.table(name, cache_size=0)

    def _take_lock(self) -> None:
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LedgerLocked(
                f"another agent is already using {self.data_dir}; stop it first") from None
        self._lock_fd = fd

    def _open_outbox(self, *, owner: bool) -> None:
        """Migrate an ``outbox`` table of an older ``ledger.json``, then read the segments."""
        data = self.storage.read() or {}
        legacy = data.get("outbox")
        state = self._read_state()
        if legacy is not None and owner:
            self._migrate(legacy)
        self._box.load(int(state["acked_seq"]), int(state["next_seq"]))
        if legacy and not owner:  # a reader of a directory its agent has not migrated yet
            self._box.adopt((int(k), _encoder.encode(r)) for k, r in legacy.items()
                            if int(k) > int(state["acked_seq"]))

    def _migrate(self, legacy: dict[str, Any]) -> None:
        """Move the records of the old ``outbox`` table into a segment, losing none.

        The segment is written whole and atomically first (redone from the table if a crash
        cuts this short), then ``ledger.json`` is committed without the table.
        """
        recs = sorted(legacy.values(), key=lambda r: int(r["seq"]))
        if recs:
            directory = self._box.dir
            if not directory.is_dir():
                os.mkdir(directory, 0o700)
                fsync_dir(self.data_dir)
            payload = b"".join(_encoder.encode(r) + b"\n" for r in recs)
            atomic_write_bytes(directory / segment_name(int(recs[0]["seq"])), payload)

        def mutate(data: Tables) -> None:
            data.pop("outbox", None)

        self._commit(mutate)

    def close(self) -> None:
        if hasattr(self, "_box"):
            self._box.close()
        self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _commit(self, mutate: Callable[[Tables], Any]) -> Any:
        """Apply ``mutate`` to the whole database and write it in one atomic write.

        If ``mutate`` raises or the write fails, nothing changes on disk or in memory.
        """
        data = self.storage.read() or {}
        self._pending = []
        mark = None
        try:
            result = mutate(data)
            if self._pending:  # the records first, fsync'd: ledger.json is the commit
                mark = self._box.append(self._pending)
            self.storage.write(data)
        except BaseException:
            self.storage.invalidate()
            if mark is not None:
                # a replace that failed after its rename (the directory fsync) has landed:
                # ledger.json on disk decides whether the appended records are committed
                try:
                    landed = self._read_state()["next_seq"] > self._pending[0][0]
                except Exception:  # unreadable now: the next start decides from the files
                    landed = False
                if landed:
                    self._box.commit(self._pending)
                else:
                    self._box.undo(mark)
            self._pending = []
            raise
        self._box.commit(self._pending)
        self._pending = []
        return result

    @staticmethod
    def _state(data: Tables) -> dict[str, Any]:
        state: dict[str, Any] = data.setdefault("state", {}).setdefault(
            STATE_DOC, {"next_seq": 1, "acked_seq": 0, "active": {}})
        return state

    def _read_state(self) -> dict[str, Any]:
        data = self.storage.read() or {}
        state: dict[str, Any] = data.get("state", {}).get(STATE_DOC) or {
            "next_seq": 1, "acked_seq": 0, "active": {}}
        return state

    def _append(self, data: Tables, record: dict[str, Any]) -> dict[str, Any]:
        """Number ``record`` and put it in the outbox (inside a commit)."""
        for key in ("id", "type", "at"):
            if key not in record:
                raise LedgerError(f"a ledger record needs {key!r}")
        state = self._state(data)
        seq = state["next_seq"]
        line = _encoder.encode(stamp(record, seq, self.cac_id, self.tz))
        self._pending.append((seq, line))
        state["next_seq"] = seq + 1
        back: dict[str, Any] = _decoder.decode(line)  # what a reader gets, not the caller's
        return back

    # ---------------------------------------------------------------- reading

    @property
    def next_seq(self) -> int:
        return int(self._read_state()["next_seq"])

    @property
    def acked_seq(self) -> int:
        return int(self._read_state()["acked_seq"])

    def active_checkpoints(self) -> list[dict[str, Any]]:
        """The checkpoints of active sessions; ``id`` is the key each is stored under (a
        damaged entry comes back as what is left of it, at least its id)."""
        return [{**cp, "id": key} if isinstance(cp, dict) else {"id": key}
                for key, cp in self._read_state()["active"].items()]

    def outbox(self, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Unacknowledged records with seq > after_seq, in sequence order."""
        out: list[dict[str, Any]] = [_decoder.decode(line)
                                     for line in self._box.lines(after_seq, limit)]
        return out

    def backlog(self) -> int:
        return len(self._box)

    def voucher(self, code: str) -> dict[str, Any] | None:
        """The stored voucher entry {"voucher", "sale_id", "in_use"} of a canonical code."""
        doc = self._vouchers.get(doc_id=int(voucher_doc_id(code)))
        return None if doc is None or isinstance(doc, list) else dict(doc)

    def vouchers(self) -> list[dict[str, Any]]:
        return [dict(d) for d in self._vouchers.all()]

    def archive_path(self, day: date) -> Path:
        return self.archive_dir / f"{day.isoformat()}.jsonl"

    def local_day(self, at: str) -> date:
        return datetime.fromisoformat(at).astimezone(self.tz).date()

    def records(self, first: date | None = None, last: date | None = None
                ) -> Iterator[dict[str, Any]]:
        """Every record (archived and in the outbox) whose local day is in [first, last]."""
        seen: set[str] = set()
        for path in sorted(self.archive_dir.glob("*.jsonl")):
            try:
                day = date.fromisoformat(path.stem)
            except ValueError:
                continue
            if (first and day < first) or (last and day > last):
                continue
            for rec in read_lines(path):
                if rec.get("id") not in seen:
                    seen.add(rec["id"])
                    yield rec
        for rec in self.outbox():
            day = self.local_day(rec["at"])
            if (first and day < first) or (last and day > last):
                continue
            if rec["id"] not in seen:
                seen.add(rec["id"])
                yield rec

    # ---------------------------------------------------------------- writing

    def start_session(self, checkpoint: dict[str, Any], voucher_code: str | None = None) -> None:
        """Record a started session (and reserve its voucher) durably."""

        def mutate(data: Tables) -> None:
            active = self._state(data)["active"]
            if any(cp["station"] == checkpoint["station"] for cp in active.values()):
                raise LedgerError(f"station {checkpoint['station']} already has a session")
            if voucher_code is not None:
                table = data.get("vouchers", {})
                key = voucher_doc_id(voucher_code)
                if key not in table:
                    raise LedgerError("unknown voucher")
                table[key] = _apply(table[key], lambda e: e.reserve(checkpoint["id"]))
            active[checkpoint["id"]] = checkpoint

        self._commit(mutate)

    def checkpoint(self, checkpoints: list[dict[str, Any]]) -> None:
        """Replace the checkpoints of active sessions (billed time so far, limits)."""
        if not checkpoints:
            return

        def mutate(data: Tables) -> None:
            active = self._state(data)["active"]
            for cp in checkpoints:
                if cp["id"] not in active:
                    raise LedgerError(f"no active session {cp['id']}")
                active[cp["id"]] = cp

        self._commit(mutate)

    def close_session(self, record: dict[str, Any], voucher_code: str | None = None,
                      spent_seconds: int = 0) -> dict[str, Any]:
        """Close an active session: drop its checkpoint, spend its voucher, append its record."""

        def mutate(data: Tables) -> dict[str, Any]:
            active = self._state(data)["active"]
            if record["id"] not in active:
                raise LedgerError(f"no active session {record['id']}")
            del active[record["id"]]
            out = dict(record)
            bill = self._state(data).get("bills", {}).pop(record["id"], None)
            if bill:  # counter sales on this session's bill (CONTRACT §8)
                amount = sum(int(a) for a in bill.values())
                out.update(sales=list(bill), sales_amount=amount,
                           total=int(record["fee"]) + amount)
            if voucher_code is not None:
                table = data.get("vouchers", {})
                key = voucher_doc_id(voucher_code)
                if key in table:
                    table[key] = _apply(table[key], lambda e: e.release(spent_seconds))
            return self._append(data, out)

        result: dict[str, Any] = self._commit(mutate)
        return result

    def sell_voucher(self, voucher: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """Store a new voucher and its sale record in one write."""

        def mutate(data: Tables) -> dict[str, Any]:
            table = data.setdefault("vouchers", {})
            key = voucher_doc_id(voucher["code"])
            if key in table:
                raise LedgerError("voucher code collision; try again")
            table[key] = VoucherEntry(Voucher.from_dict(voucher), str(record["id"])).to_dict()
            return self._append(data, record)

        result: dict[str, Any] = self._commit(mutate)
        return result

    def void_voucher(self, code: str, reason: str, record: dict[str, Any]) -> dict[str, Any]:
        """Mark a voucher void and append the void record in one write."""

        def mutate(data: Tables) -> dict[str, Any]:
            table = data.get("vouchers", {})
            key = voucher_doc_id(code)
            if key not in table:
                raise LedgerError("unknown voucher")
            table[key] = _apply(table[key], lambda e: e.void(reason))
            return self._append(data, record)

        result: dict[str, Any] = self._commit(mutate)
        return result

    # ---------------------------------------------------------------- the till (§8)

    def bill(self, session_id: str) -> dict[str, int]:
        """The sales on a running session's bill: sale id -> amount."""
        bills = self._read_state().get("bills", {})
        return dict(bills.get(session_id, {}))

    def open_shift_doc(self) -> dict[str, Any] | None:
        """The open shift (``id``, ``operator``, ``opened_at``, ``opening_float``), if any."""
        shift = self._read_state().get("shift")
        return dict(shift) if isinstance(shift, dict) else None

    def find_record(self, record_id: str) -> dict[str, Any] | None:
        """A record by id, archived or in the outbox (reads every day: for voids)."""
        for rec in self.records():
            if rec.get("id") == record_id:
                return rec
        return None

    def add_sale(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append a sale record; a sale with ``session`` goes on that active session's bill
        in the same write."""

        def mutate(data: Tables) -> dict[str, Any]:
            state = self._state(data)
            sid = record.get("session")
            if sid is not None:
                if sid not in state["active"]:
                    raise LedgerError(f"no active session {sid}")
                state.setdefault("bills", {}).setdefault(sid, {})[record["id"]] = int(
                    record["amount"])
            return self._append(data, record)

        result: dict[str, Any] = self._commit(mutate)
        return result

    def add_records(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append plain records (content use, CONTRACT §9b) in one write."""

        def mutate(data: Tables) -> list[dict[str, Any]]:
            return [self._append(data, r) for r in records]

        result: list[dict[str, Any]] = self._commit(mutate)
        return result

    def void_sale(self, record: dict[str, Any]) -> dict[str, Any]:
        """Append a sale's void; a sale still on a running session's bill leaves the bill
        (the record says ``cash: false``) in the same write."""

        def mutate(data: Tables) -> dict[str, Any]:
            bills = self._state(data).get("bills", {})
            sid = record.get("session")
            bill = bills.get(sid) if sid is not None else None
            out = {**record, "cash": True}
            if bill is not None and record["ref"] in bill:
                del bill[record["ref"]]
                if not bill:
                    del bills[sid]
                out["cash"] = False
            return self._append(data, out)

        result: dict[str, Any] = self._commit(mutate)
        return result

    def open_shift(self, shift: dict[str, Any]) -> None:
        def mutate(data: Tables) -> None:
            state = self._state(data)
            if state.get("shift"):
                raise LedgerError("a shift is already open")
            state["shift"] = shift

        self._commit(mutate)

    def close_shift(self, record: dict[str, Any]) -> dict[str, Any]:
        """Close the open shift and append its record in one write."""

        def mutate(data: Tables) -> dict[str, Any]:
            state = self._state(data)
            shift = state.get("shift")
            if not shift or shift.get("id") != record["id"]:
                raise LedgerError("no such open shift")
            del state["shift"]
            return self._append(data, record)

        result: dict[str, Any] = self._commit(mutate)
        return result

    def ack(self, seq: int) -> int:
        """The hub has stored every record up to ``seq``: archive them, then drop them.

        Returns how many records left the outbox. Acks are idempotent and may arrive late or
        out of order; an ack beyond what was ever sent is refused.
        """
        state = self._read_state()
        if seq >= state["next_seq"]:
            raise LedgerError(f"ack {seq} is beyond the last record {state['next_seq'] - 1}")
        if seq <= state["acked_seq"]:
            return 0
        done = self.outbox(after_seq=state["acked_seq"], limit=seq - state["acked_seq"])
        by_day: dict[date, list[dict[str, Any]]] = {}
        for rec in done:
            by_day.setdefault(self.local_day(rec["at"]), []).append(rec)
        for day, recs in sorted(by_day.items()):
            append_lines_durable(self.archive_path(day), recs)

        def mutate(data: Tables) -> None:
            self._state(data)["acked_seq"] = seq

        self._commit(mutate)
        self._box.drop_through(seq)  # and removes the segments that hold nothing else
        return len(done)

    def prune_vouchers(self, now: datetime) -> int:
        """Drop vouchers that can never be used again from the live file."""
        cutoff = now - VOUCHER_RETENTION

        def dead(entry: dict[str, Any]) -> bool:
            return VoucherEntry.from_dict(entry).dead(cutoff)

        def mutate(data: Tables) -> int:
            table = data.get("vouchers", {})
            gone = [k for k, e in table.items() if dead(e)]
            for k in gone:
                del table[k]
            return len(gone)

        if not any(dead(e) for e in self.vouchers()):
            return 0
        removed: int = self._commit(mutate)
        return removed


__all__ = ["Ledger", "LedgerError", "LedgerLocked", "StorageError", "stamp", "voucher_doc_id"]
