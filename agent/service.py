"""The agent's application service: sessions, vouchers and operators over the ledger.

``AgentService`` is synchronous and confined to one thread (the HTTP layer runs every call
on a single-worker executor), so calls are serialised without locks and the event loop never
waits on an fsync. Every change is durable in the ledger before the call returns; the
in-memory view changes only after the ledger write succeeded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from agent.audit import AuditLog
from agent.auth import TokenStore, hash_password, verify_password
from agent.clock import Clock
from agent.config import AgentConfig, ConfigError, Tariff, parse_tariff, tariff_to_dict
from agent.ledger import Ledger, LedgerError
from agent.operators import OperatorStore
from agent.ratelimit import FailureLimiter
from agent.session import EndReason, Session, SessionError
from agent.storage import atomic_write_bytes
from agent.tariff import UnknownCategory, compute_fee
from agent.vouchers import (
    InvalidCode,
    Voucher,
    VoucherRejected,
    check_redeemable,
    generate_code,
    normalize_code,
)

log = logging.getLogger(__name__)

STATION_ONLINE_SECONDS = 30.0  # a kiosk polls every few seconds; silent this long = offline
REDEEM_FAILURE_LIMIT = 5
REDEEM_FAILURE_WINDOW = 60.0
MAX_VOUCHER_MINUTES = 24 * 60
OPERATOR_TOKEN_TTL = 12 * 3600
MAX_MESSAGE_CHARS = 500
MAX_MESSAGE_SECONDS = 24 * 3600
TARIFF_FILE = "tariff.json"  # the tariff edited at the console or pushed by the hub
STATIONS_FILE = "stations.json"  # station locks (they survive a restart)


class ServiceError(Exception):
    """A request the service refuses; maps to a 4xx answer with a stable code."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # "operator" | "manager" | "station"


def _new_id() -> str:
    return uuid.uuid4().hex


class AgentService:
    def __init__(self, config: AgentConfig, ledger: Ledger, operators: OperatorStore,
                 clock: Clock) -> None:
        self.config = config
        self.ledger = ledger
        self.operators = operators
        self.clock = clock
        self.tz = config.tz
        self.state_dir = ledger.data_dir
        self.audit = AuditLog(self.state_dir / "audit", config.tz)
        self.tariff: Tariff = config.tariff
        self.tariff_info: dict[str, Any] = {"version": 0, "source": "config",
                                            "set_at": None, "set_by": None}
        self._load_tariff()
        self.session_tariffs: dict[str, Tariff] = {}  # session id -> tariff it started under
        self.locks: dict[str, dict[str, Any]] = self._load_locks()
        self.messages: dict[str, dict[str, Any]] = {}  # station -> message shown on its kiosk
        # set by the content cache: a cheap, thread-safe read of its sync status for health
        self.content_status: Callable[[], dict[str, Any]] | None = None
        self.tokens = TokenStore()
        self.limiter = FailureLimiter(REDEEM_FAILURE_LIMIT, REDEEM_FAILURE_WINDOW)
        self.sessions: dict[str, Session] = {}
        self.voucher_codes: dict[str, str] = {}  # session id -> code of the voucher paying
        self.station_seen: dict[str, float] = {}
        self._station_by_token = {s.token: s.id for s in config.stations}
        self._last_checkpoint = clock.monotonic()

    # ---------------------------------------------------------------- lifecycle

    def recover(self) -> list[dict[str, Any]]:
        """Close the sessions a crash interrupted, billed up to their last checkpoint."""
        closed = []
        for cp in self.ledger.active_checkpoints():
            session = Session.from_checkpoint(cp, self.clock.monotonic())
            rec = session.close_billed(int(cp["billed_seconds"]), EndReason.RESTART_RECOVERY,
                                       self._checkpoint_tariff(cp), self.tz)
            record = {**rec.to_record(), "at": rec.ended_at.isoformat()}
            closed.append(self.ledger.close_session(
                record, cp.get("voucher_code"), rec.billed_seconds))
            log.warning("session %s on station %s closed by restart recovery after %d s",
                        rec.id, rec.station, rec.billed_seconds)
        return closed

    def tick(self) -> list[dict[str, Any]]:
        """Close sessions whose time is up; checkpoint the others when due."""
        now = self.clock.monotonic()
        closed = [self._close(s, EndReason.TIME_EXHAUSTED)
                  for s in list(self.sessions.values()) if s.exhausted(now)]
        if self.sessions and now - self._last_checkpoint >= self.config.checkpoint_seconds:
            self.checkpoint()
        return closed

    def checkpoint(self) -> None:
        now = self.clock.monotonic()
        with self._ledger_write():
            self.ledger.checkpoint([self._checkpoint(s, now) for s in self.sessions.values()])
        self._last_checkpoint = now

    @contextlib.contextmanager
    def _ledger_write(self) -> Iterator[None]:
        """Wrap a ledger write: on failure, make memory agree with what the ledger holds.

        A write can fail after it took effect (the directory fsync after the rename), so
        memory is rebuilt from the ledger instead of being assumed unchanged.
        """
        try:
            yield
        except LedgerError:
            raise
        except OSError as exc:
            log.exception("ledger write failed")
            with contextlib.suppress(Exception):
                self._reconcile()
            raise ServiceError(503, "storage_error",
                               f"the ledger could not be written ({exc.strerror or exc}); "
                               "check the disk") from None
        except BaseException:
            with contextlib.suppress(Exception):
                self._reconcile()
            raise

    def _reconcile(self) -> None:
        stored = {cp["id"]: cp for cp in self.ledger.active_checkpoints()}
        mono = self.clock.monotonic()
        for sid, s in list(self.sessions.items()):
            cp = stored.get(sid)
            if cp is None:  # its close reached the ledger
                del self.sessions[sid]
                self.voucher_codes.pop(sid, None)
                self.session_tariffs.pop(sid, None)
            elif cp["limit_seconds"] != s.limit_seconds:  # its extension reached the ledger
                self.sessions[sid] = replace(s, limit_seconds=cp["limit_seconds"])
        for sid, cp in stored.items():
            if sid not in self.sessions:  # its start reached the ledger
                self.sessions[sid] = Session.from_checkpoint(cp, mono)
                self.session_tariffs[sid] = self._checkpoint_tariff(cp)
                if cp.get("voucher_code"):
                    self.voucher_codes[sid] = cp["voucher_code"]

    def _checkpoint(self, s: Session, mono: float) -> dict[str, Any]:
        return {**s.to_checkpoint(mono), "voucher_code": self.voucher_codes.get(s.id),
                "tariff": tariff_to_dict(self._tariff_of(s))}

    def _tariff_of(self, s: Session) -> Tariff:
        """The tariff a session is billed with: the one in force when it started."""
        return self.session_tariffs.get(s.id, self.tariff)

    def _checkpoint_tariff(self, cp: dict[str, Any]) -> Tariff:
        raw = cp.get("tariff")
        if raw is None:  # written before tariffs could change at run time
            return self.tariff
        try:
            return parse_tariff(raw)
        except ConfigError:
            log.exception("session %s: its stored tariff is unreadable; using the current one",
                          cp.get("id"))
            return self.tariff

    # ---------------------------------------------------------------- audit

    def audit_action(self, actor: str, action: str, target: str | None = None,
               **details: Any) -> None:
        """Append to the audit trail; a failure is logged loudly but never undoes the action
        (which the ledger already holds)."""
        try:
            self.audit.record(self.clock.now(), actor, action, target, **details)
        except OSError:
            log.exception("could not write the audit trail (%s %s %s)", actor, action, target)

    def audit_entries(self, since: datetime | None = None, until: datetime | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        return self.audit.entries(since, until, limit)

    # ---------------------------------------------------------------- authentication

    def login(self, name: str, password: str) -> dict[str, Any]:
        account = self.operators.get(name)
        # verify against a dummy hash when the name is unknown, so timing tells nothing
        encoded = account["password_hash"] if account else _dummy_hash()
        if not verify_password(password, encoded) or not account or not account.get("active"):
            log.info("failed operator login for %r", name)
            self.audit_action(f"operator:{name}", "login.failed")
            raise ServiceError(401, "bad_credentials", "wrong name or password")
        token = self.tokens.issue(name, account["role"], self.clock.monotonic(),
                                  OPERATOR_TOKEN_TTL)
        log.info("operator %s logged in", name)
        self.audit_action(f"operator:{name}", "login")
        return {"token": token, "name": name, "role": account["role"],
                "expires_in": OPERATOR_TOKEN_TTL}

    def logout(self, token: str) -> None:
        self.tokens.revoke(token)

    def operator_for_token(self, token: str) -> Principal:
        found = self.tokens.lookup(token, self.clock.monotonic())
        if found is None:
            raise ServiceError(401, "unauthorized", "log in first (operator token missing, "
                               "expired or not an operator token)")
        return Principal(found[0], found[1])

    def station_for_token(self, token: str, station_id: str) -> str:
        sid = self._station_by_token.get(token)
        if sid is None:
            raise ServiceError(401, "unauthorized", "unknown station token")
        if sid != station_id:
            raise ServiceError(403, "forbidden", "a station token acts on its own station only")
        self.station_seen[sid] = self.clock.monotonic()
        return sid

    # ---------------------------------------------------------------- views

    def _require_station(self, station_id: str) -> None:
        if self.config.station(station_id) is None:
            raise ServiceError(404, "unknown_station", f"no station {station_id!r}")

    def _session_on(self, station_id: str) -> Session | None:
        for s in self.sessions.values():
            if s.station == station_id:
                return s
        return None

    def session_view(self, s: Session) -> dict[str, Any]:
        now = self.clock.monotonic()
        return {
            "id": s.id,
            "station": s.station,
            "started_at": s.started_at.isoformat(),
            "minutes": None if s.limit_seconds is None else s.limit_seconds // 60,
            "limit_seconds": s.limit_seconds,
            "open_ended": s.open_ended,
            "category": s.category,
            "paid_by": "voucher" if s.voucher_id else "cash",
            "operator": s.operator,
            "billed_seconds": s.billed_seconds(now),
            "remaining_seconds": s.remaining_seconds(now),
            "fee_so_far": s.fee_so_far(now, self._tariff_of(s), self.tz),
            "currency": self._tariff_of(s).currency,
        }

    def stations(self) -> list[dict[str, Any]]:
        self.tick()
        now = self.clock.monotonic()
        out = []
        for st in self.config.stations:
            seen = self.station_seen.get(st.id)
            s = self._session_on(st.id)
            out.append({
                "id": st.id,
                "online": seen is not None and now - seen <= STATION_ONLINE_SECONDS,
                "session": None if s is None else self.session_view(s),
                **self.station_state(st.id),
            })
        return out

    def health_snapshot(self) -> dict[str, Any]:
        """Backlog and each station's state as plain data, for the health report (read-only)."""
        now = self.clock.monotonic()
        stations = []
        for st in self.config.stations:
            seen = self.station_seen.get(st.id)
            stations.append({
                "id": st.id,
                "online": seen is not None and now - seen <= STATION_ONLINE_SECONDS,
                "last_seen_s": None if seen is None else round(now - seen, 1),
                "in_session": self._session_on(st.id) is not None,
                "locked": st.id in self.locks,
            })
        content = self.content_status() if self.content_status is not None else {}
        return {"backlog": self.ledger.backlog(), "stations": stations, "content": content,
                "tariff_version": self.tariff_info["version"]}

    def active_sessions(self) -> list[dict[str, Any]]:
        self.tick()
        return [self.session_view(s) for s in self.sessions.values()]

    def station_session(self, station_id: str) -> dict[str, Any]:
        self._require_station(station_id)
        self.tick()
        s = self._session_on(station_id)
        state = self.station_state(station_id)
        if s is None:
            return {"session": None, **state}
        view = self.session_view(s)
        code = self.voucher_codes.get(s.id)
        if code is not None:
            view["voucher_minutes_left"] = max(
                0, ((s.limit_seconds or 0) - s.billed_seconds(self.clock.monotonic())) // 60)
        return {"session": view, **state}

    # ---------------------------------------------------------------- sessions

    def _check_category(self, category: str | None) -> None:
        if category and category not in self.tariff.concessions:
            known = ", ".join(sorted(self.tariff.concessions)) or "none configured"
            raise ServiceError(400, "unknown_category",
                               f"unknown concession category {category!r} (known: {known})")

    def start_session(self, station_id: str, minutes: int | None, category: str | None,
                      operator: str) -> dict[str, Any]:
        self._require_station(station_id)
        self._check_category(category)
        self.tick()
        self._require_unlocked(station_id)
        if self._session_on(station_id) is not None:
            raise ServiceError(409, "station_busy", f"station {station_id} already has a session")
        s = Session(id=_new_id(), station=station_id, started_at=self.clock.now(),
                    mono_start=self.clock.monotonic(),
                    limit_seconds=None if minutes is None else minutes * 60,
                    category=category or None, operator=operator)
        self.session_tariffs[s.id] = self.tariff
        try:
            with self._ledger_write():
                self.ledger.start_session(self._checkpoint(s, self.clock.monotonic()))
                self.sessions[s.id] = s
        finally:
            if s.id not in self.sessions:
                self.session_tariffs.pop(s.id, None)
        log.info("session %s started on %s by %s (%s min)", s.id, station_id, operator,
                 "open" if minutes is None else minutes)
        self.audit_action(f"operator:{operator}", "session.start", station_id, session=s.id,
                    minutes=minutes, category=category or None)
        return self.session_view(s)

    def _get_session(self, session_id: str) -> Session:
        self.tick()
        s = self.sessions.get(session_id)
        if s is None:
            raise ServiceError(404, "unknown_session", f"no active session {session_id!r}")
        return s

    def extend(self, session_id: str, minutes: int, operator: str) -> dict[str, Any]:
        s = self._get_session(session_id)
        mono = self.clock.monotonic()
        try:
            extended = s.extend(minutes, mono)
        except SessionError as exc:
            raise ServiceError(409, exc.code, str(exc)) from None
        with self._ledger_write():
            self.ledger.checkpoint([self._checkpoint(extended, mono)])
            self.sessions[s.id] = extended
        log.info("session %s extended by %d min by %s", s.id, minutes, operator)
        self.audit_action(f"operator:{operator}", "session.extend", s.station, session=s.id,
                    minutes=minutes)
        return self.session_view(extended)

    def end(self, session_id: str, reason: EndReason,
            actor: str | None = None) -> dict[str, Any]:
        """End a session; ``actor`` (``operator:NAME``, ``hub``) is recorded in the audit."""
        record = self._close(self._get_session(session_id), reason)
        if actor is not None:
            self.audit_action(actor, "session.end", record["station"], session=session_id,
                        fee=record["fee"], billed_seconds=record["billed_seconds"])
        return record

    def end_on_station(self, station_id: str, reason: EndReason,
                       actor: str | None = None) -> dict[str, Any]:
        self._require_station(station_id)
        self.tick()
        s = self._session_on(station_id)
        if s is None:
            raise ServiceError(404, "no_session", f"station {station_id} has no session")
        record = self._close(s, reason)
        self.audit_action(actor or f"station:{station_id}", "session.end", station_id, session=s.id,
                    reason=str(reason), fee=record["fee"])
        return record

    def _close(self, s: Session, reason: EndReason) -> dict[str, Any]:
        closed = s.close(self.clock.monotonic(), reason, self._tariff_of(s), self.tz)
        record = {**closed.to_record(), "at": closed.ended_at.isoformat()}
        code = self.voucher_codes.get(s.id)
        with self._ledger_write():
            stored = self.ledger.close_session(record, code, closed.billed_seconds)
            del self.sessions[s.id]
            self.voucher_codes.pop(s.id, None)
            self.session_tariffs.pop(s.id, None)
        log.info("session %s on %s closed (%s): %d s, fee %d", s.id, s.station, reason,
                 closed.billed_seconds, closed.fee)
        return self._public_record(stored, code)

    def _public_record(self, stored: dict[str, Any], code: str | None) -> dict[str, Any]:
        out = dict(stored)
        if code is not None:
            entry = self.ledger.voucher(code)
            if entry is not None:
                out["voucher_minutes_left"] = int(entry["voucher"]["seconds_left"]) // 60
        return out

    # ---------------------------------------------------------------- vouchers

    def sell_voucher(self, minutes: int, category: str | None, operator: str) -> dict[str, Any]:
        self._check_category(category)
        if not 1 <= minutes <= MAX_VOUCHER_MINUTES:
            raise ServiceError(400, "bad_minutes",
                               f"minutes must be between 1 and {MAX_VOUCHER_MINUTES}")
        now = self.clock.now()
        try:
            price = compute_fee(self.tariff, now, minutes * 60, self.tz, category)
        except UnknownCategory as exc:
            raise ServiceError(400, "unknown_category", str(exc)) from None
        code = generate_code()
        while self.ledger.voucher(code) is not None:  # 50 random bits: next to never
            code = generate_code()
        v = Voucher(code=code, cac_id=self.config.cac_id, seconds_total=minutes * 60,
                    seconds_left=minutes * 60, price=price, category=category or None,
                    sold_at=now, expires_at=now + timedelta(days=self.config.voucher_valid_days),
                    sold_by=operator)
        record = {"type": "voucher_sale", "id": _new_id(), "at": now.isoformat(),
                  "minutes": minutes, "price": price, "currency": self.tariff.currency,
                  "category": v.category, "expires_at": v.expires_at.isoformat(),
                  "operator": operator}
        with self._ledger_write():
            self.ledger.sell_voucher(v.to_dict(), record)
        log.info("voucher sold by %s: %d min for %d", operator, minutes, price)
        self.audit_action(f"operator:{operator}", "voucher.sell", str(record["id"]),
                          minutes=minutes, price=price, category=v.category)
        return {"code": v.code, "minutes": minutes, "price": price,
                "currency": self.tariff.currency, "category": v.category,
                "expires_at": v.expires_at.isoformat(), "sale_id": record["id"]}

    def _voucher_entry(self, code_text: str) -> tuple[str, dict[str, Any]]:
        try:
            code = normalize_code(code_text)
        except InvalidCode as exc:
            raise ServiceError(400, "bad_code", str(exc)) from None
        entry = self.ledger.voucher(code)
        if entry is None:
            raise ServiceError(404, "unknown_voucher", "no such voucher at this centre")
        return code, entry

    def voucher_info(self, code_text: str) -> dict[str, Any]:
        code, entry = self._voucher_entry(code_text)
        v = Voucher.from_dict(entry["voucher"])
        now = self.clock.now()
        return {"code": v.code, "minutes": v.seconds_total // 60, "minutes_left": v.minutes_left,
                "seconds_left": v.seconds_left, "price": v.price, "category": v.category,
                "sold_at": v.sold_at.isoformat(), "expires_at": v.expires_at.isoformat(),
                "expired": v.is_expired(now), "void": v.void, "void_reason": v.void_reason,
                "in_use": bool(entry.get("in_use"))}

    def void_voucher(self, code_text: str, reason: str, operator: str) -> dict[str, Any]:
        code, entry = self._voucher_entry(code_text)
        v = Voucher.from_dict(entry["voucher"])
        # an unused voucher's sale is reversed in full; a used one only loses its balance
        refund = v.price if v.seconds_left == v.seconds_total else 0
        record = {"type": "void", "id": _new_id(), "at": self.clock.now().isoformat(),
                  "ref": entry["sale_id"], "amount": refund, "currency": self.tariff.currency,
                  "minutes_voided": v.minutes_left, "reason": reason, "operator": operator}
        try:
            with self._ledger_write():
                stored = self.ledger.void_voucher(code, reason, record)
        except LedgerError as exc:
            raise ServiceError(409, "cannot_void", str(exc)) from None
        log.info("voucher sale %s voided by %s", entry["sale_id"], operator)
        self.audit_action(f"operator:{operator}", "voucher.void", entry["sale_id"], reason=reason,
                    refund=refund)
        return stored

    def redeem(self, station_id: str, code_text: str) -> dict[str, Any]:
        """Start a session on a station from a voucher; failures count toward a 429."""
        self._require_station(station_id)
        mono = self.clock.monotonic()
        if self.limiter.blocked(station_id, mono):
            wait = max(1, round(self.limiter.retry_after(station_id, mono)))
            raise ServiceError(429, "too_many_attempts",
                               f"too many wrong codes; try again in {wait} s",
                               {"Retry-After": str(wait)})
        self.tick()
        self._require_unlocked(station_id)
        if self._session_on(station_id) is not None:
            raise ServiceError(409, "station_busy", "this station already has a session")
        try:
            code = normalize_code(code_text)
            entry = self.ledger.voucher(code)
            v = check_redeemable(None if entry is None else Voucher.from_dict(entry["voucher"]),
                                 self.config.cac_id, self.clock.now())
        except InvalidCode as exc:
            self.limiter.record_failure(station_id, mono)
            raise ServiceError(400, "bad_code", str(exc)) from None
        except VoucherRejected as exc:
            self.limiter.record_failure(station_id, mono)
            status = 404 if exc.reason in ("unknown", "other_cac") else 409
            raise ServiceError(status, f"voucher_{exc.reason}", str(exc)) from None
        assert entry is not None
        if entry.get("in_use"):
            raise ServiceError(409, "voucher_in_use", "this voucher is in use on another station")
        s = Session(id=_new_id(), station=station_id, started_at=self.clock.now(),
                    mono_start=mono, limit_seconds=v.seconds_left, category=v.category,
                    voucher_id=entry["sale_id"])
        self.voucher_codes[s.id] = code
        self.session_tariffs[s.id] = self.tariff
        try:
            with self._ledger_write():
                self.ledger.start_session(self._checkpoint(s, mono), code)
                self.sessions[s.id] = s
        except BaseException:
            if s.id not in self.sessions:
                self.voucher_codes.pop(s.id, None)
                self.session_tariffs.pop(s.id, None)
            raise
        log.info("session %s started on %s from a voucher (%d s left)", s.id, station_id,
                 v.seconds_left)
        self.audit_action(f"station:{station_id}", "voucher.redeem", entry["sale_id"], session=s.id,
                    seconds_left=v.seconds_left)
        return self.session_view(s)

    # ---------------------------------------------------------------- station control

    def _load_locks(self) -> dict[str, dict[str, Any]]:
        path = self.state_dir / STATIONS_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.exception("%s is unreadable; every station starts unlocked", path)
            return {}
        locks = raw.get("locks", {}) if isinstance(raw, dict) else {}
        return {k: v for k, v in locks.items()
                if isinstance(v, dict) and self.config.station(k) is not None}

    def _save_locks(self, locks: dict[str, dict[str, Any]]) -> None:
        data = json.dumps({"locks": locks}, ensure_ascii=False, indent=1).encode()
        try:
            atomic_write_bytes(self.state_dir / STATIONS_FILE, data)
        except OSError as exc:
            raise ServiceError(503, "storage_error",
                               f"the station state could not be written ({exc.strerror or exc})"
                               ) from None

    def _require_unlocked(self, station_id: str) -> None:
        if station_id in self.locks:
            raise ServiceError(409, "station_locked",
                               f"station {station_id} is locked; unlock it first")

    def _message_of(self, station_id: str) -> dict[str, Any] | None:
        m = self.messages.get(station_id)
        if m is None:
            return None
        if m["expires_mono"] is not None and self.clock.monotonic() >= m["expires_mono"]:
            del self.messages[station_id]
            return None
        return {k: v for k, v in m.items() if k != "expires_mono"}

    def station_state(self, station_id: str) -> dict[str, Any]:
        """What a kiosk must show besides its session: a lock and an operator message."""
        lock = self.locks.get(station_id)
        return {"locked": lock is not None, "lock": lock, "message": self._message_of(station_id)}

    def lock_station(self, station_id: str, actor: str, reason: str = "") -> dict[str, Any]:
        """Lock a station: no new session starts on it; a running one ends now (billed)."""
        self._require_station(station_id)
        self.tick()
        if station_id not in self.locks:
            lock = {"reason": reason[:MAX_MESSAGE_CHARS], "by": actor,
                    "at": self.clock.now().isoformat()}
            self._save_locks({**self.locks, station_id: lock})
            self.locks[station_id] = lock
            self.audit_action(actor, "station.lock", station_id, reason=reason)
        s = self._session_on(station_id)
        if s is not None:
            self.end(s.id, EndReason.OPERATOR, actor)
        return self.station_view(station_id)

    def unlock_station(self, station_id: str, actor: str) -> dict[str, Any]:
        self._require_station(station_id)
        if station_id in self.locks:
            rest = {k: v for k, v in self.locks.items() if k != station_id}
            self._save_locks(rest)
            self.locks = rest
            self.audit_action(actor, "station.unlock", station_id)
        return self.station_view(station_id)

    def send_message(self, station_id: str | None, text: str, seconds: int | None,
                     actor: str) -> list[dict[str, Any]]:
        """Show ``text`` on one kiosk (or all with ``station_id=None``) for ``seconds``
        (until replaced or cleared when None); an empty text clears the message."""
        targets = [st.id for st in self.config.stations] if station_id is None else [station_id]
        for sid in targets:
            self._require_station(sid)
        text = text.strip()
        if len(text) > MAX_MESSAGE_CHARS:
            raise ServiceError(400, "bad_message",
                               f"a message is at most {MAX_MESSAGE_CHARS} characters")
        if seconds is not None and not 1 <= seconds <= MAX_MESSAGE_SECONDS:
            raise ServiceError(400, "bad_seconds",
                               f"seconds must be between 1 and {MAX_MESSAGE_SECONDS}")
        now = self.clock.now()
        for sid in targets:
            if not text:
                self.messages.pop(sid, None)
                continue
            self.messages[sid] = {
                "id": _new_id(), "text": text, "from": actor, "at": now.isoformat(),
                "expires_at": None if seconds is None
                else (now + timedelta(seconds=seconds)).isoformat(),
                "expires_mono": None if seconds is None else self.clock.monotonic() + seconds,
            }
        self.audit_action(actor, "station.message" if text else "station.message_clear",
                    station_id or "*", text=text, seconds=seconds)
        return [self.station_view(sid) for sid in targets]

    def station_view(self, station_id: str) -> dict[str, Any]:
        self._require_station(station_id)
        now = self.clock.monotonic()
        seen = self.station_seen.get(station_id)
        s = self._session_on(station_id)
        return {
            "id": station_id,
            "online": seen is not None and now - seen <= STATION_ONLINE_SECONDS,
            "session": None if s is None else self.session_view(s),
            **self.station_state(station_id),
        }

    # ---------------------------------------------------------------- tariff

    def _config_tariff_hash(self) -> str:
        raw = json.dumps(tariff_to_dict(self.config.tariff), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()

    def _load_tariff(self) -> None:
        """Use the tariff last set at run time, unless the config's tariff changed since."""
        path = self.state_dir / TARIFF_FILE
        try:
            stored = json.loads(path.read_bytes())
            tariff = parse_tariff(stored["tariff"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            log.exception("%s is unreadable; using the tariff of the config file", path)
            return
        if stored.get("config_hash") != self._config_tariff_hash():
            log.warning("the config file's tariff changed since the tariff was last edited at "
                        "run time (%s by %s); the config file's tariff wins",
                        stored.get("set_at"), stored.get("set_by"))
            self.tariff_info["version"] = int(stored.get("version", 0))
            return
        self.tariff = tariff
        self.tariff_info = {"version": int(stored.get("version", 1)), "source": "edited",
                            "set_at": stored.get("set_at"), "set_by": stored.get("set_by")}

    def tariff_view(self) -> dict[str, Any]:
        return {"tariff": tariff_to_dict(self.tariff), **self.tariff_info}

    def set_tariff(self, raw: object, actor: str) -> dict[str, Any]:
        """Replace the tariff for sessions and vouchers from now on (running sessions keep
        theirs). ``raw`` has the shape of the config file's ``[tariff]`` table and is
        checked by the same rules; a bad one changes nothing (400 naming the key)."""
        try:
            tariff = parse_tariff(raw)
        except ConfigError as exc:
            raise ServiceError(400, "bad_tariff", str(exc)) from None
        version = int(self.tariff_info["version"]) + 1
        now = self.clock.now().isoformat()
        stored = {"version": version, "tariff": tariff_to_dict(tariff), "set_at": now,
                  "set_by": actor, "config_hash": self._config_tariff_hash()}
        try:
            atomic_write_bytes(self.state_dir / TARIFF_FILE,
                               json.dumps(stored, indent=1).encode())
        except OSError as exc:
            raise ServiceError(503, "storage_error",
                               f"the tariff could not be written ({exc.strerror or exc})"
                               ) from None
        old = tariff_to_dict(self.tariff)
        self.tariff = tariff
        self.tariff_info = {"version": version, "source": "edited", "set_at": now,
                            "set_by": actor}
        log.info("tariff version %d set by %s", version, actor)
        self.audit_action(actor, "tariff.set", f"v{version}", old=old, new=stored["tariff"])
        return self.tariff_view()

    def quote(self, minutes: int, category: str | None, start: datetime | None = None) -> int:
        self._check_category(category)
        return compute_fee(self.tariff, start or self.clock.now(), minutes * 60, self.tz,
                           category)

    # ---------------------------------------------------------------- console: logins, accounts

    def _login_lockouts(self) -> tuple[Any, Any]:
        from agent.auth import (
            LOGIN_CLIENT_FAILURES,
            LOGIN_LOCK_SECONDS,
            LOGIN_NAME_FAILURES,
            LOGIN_WINDOW_SECONDS,
            LoginLockout,
        )

        found = self.__dict__.get("_lockouts")
        if found is None:
            found = (LoginLockout(LOGIN_NAME_FAILURES, LOGIN_WINDOW_SECONDS, LOGIN_LOCK_SECONDS),
                     LoginLockout(LOGIN_CLIENT_FAILURES, LOGIN_WINDOW_SECONDS,
                                  LOGIN_LOCK_SECONDS))
            self.__dict__["_lockouts"] = found
        return found

    def login_from(self, name: str, password: str, client: str | None = None) -> dict[str, Any]:
        """``login`` behind a lockout shared by the JSON API and the console: 5 failures for
        one name (20 from one client address) within 15 min lock it for 15 min (429)."""
        by_name, by_client = self._login_lockouts()
        now = self.clock.monotonic()
        keys = [(by_name, f"name:{name.casefold()}")]
        if client:
            keys.append((by_client, f"client:{client}"))
        wait = max(lockout.locked_for(key, now) for lockout, key in keys)
        if wait > 0:
            log.info("login for %r refused: locked out for %d s more", name, wait)
            secs = int(-(-wait // 1))
            raise ServiceError(429, "locked_out", "too many failed logins; try again in "
                               f"{-(-secs // 60)} min", {"Retry-After": str(secs)})
        try:
            result = self.login(name, password)
        except ServiceError as exc:
            if exc.status == 401:
                for lockout, key in keys:
                    if lockout.record_failure(key, now):
                        log.warning("logins locked for %s after repeated failures", key)
                        self.audit_action(f"operator:{name}", "login.lockout", key,
                                          client=client)
            raise
        by_name.reset(keys[0][1])
        return result

    def operator_list(self) -> list[dict[str, Any]]:
        return sorted(self.operators.all(), key=lambda d: str(d.get("name")))

    def operator_save(self, name: str, role: str, password: str, actor: str) -> None:
        """Create an account or replace its password and role (its tokens are revoked)."""
        from agent.operators import OperatorError

        try:
            self.operators.put(name, role, password, self.clock.now())
        except OperatorError as exc:
            raise ServiceError(400, "bad_operator", str(exc)) from None
        self.tokens.revoke_subject(name)
        self.audit_action(f"operator:{actor}", "operator.save", name, role=role)

    def operator_set_role(self, name: str, role: str, actor: str) -> None:
        from agent.operators import OperatorError

        if name == actor:
            raise ServiceError(409, "own_account", "you cannot change your own role")
        try:
            found = self.operators.set_role(name, role, self.clock.now())
        except OperatorError as exc:
            raise ServiceError(400, "bad_operator", str(exc)) from None
        if not found:
            raise ServiceError(404, "unknown_operator", f"no operator {name!r}")
        self.tokens.revoke_subject(name)
        self.audit_action(f"operator:{actor}", "operator.role", name, role=role)

    def operator_set_active(self, name: str, active: bool, actor: str) -> None:
        if name == actor and not active:
            raise ServiceError(409, "own_account", "you cannot deactivate your own account")
        if not self.operators.set_active(name, active, self.clock.now()):
            raise ServiceError(404, "unknown_operator", f"no operator {name!r}")
        if not active:
            self.tokens.revoke_subject(name)
        self.audit_action(f"operator:{actor}",
                          "operator.activate" if active else "operator.deactivate", name)

    def voucher_list(self) -> list[dict[str, Any]]:
        """The vouchers still in the live ledger file, newest first, as voucher_info gives."""
        codes = [e["voucher"]["code"] for e in self.ledger.vouchers()]
        out = [self.voucher_info(code) for code in codes]
        return sorted(out, key=lambda v: v["sold_at"], reverse=True)


@functools.cache
def _dummy_hash() -> str:
    """A real hash of a random password: a login with an unknown name costs the same."""
    return hash_password(secrets.token_hex(16))
