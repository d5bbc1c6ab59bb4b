"""The agent's application service: sessions, vouchers and operators over the ledger.

``AgentService`` is synchronous and confined to one thread (the HTTP layer runs every call
on a single-worker executor), so calls are serialised without locks and the event loop never
waits on an fsync. Every change is durable in the ledger before the call returns; the
in-memory view changes only after the ledger write succeeded.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from agent.auth import TokenStore, hash_password, verify_password
from agent.clock import Clock
from agent.config import AgentConfig, Tariff
from agent.ledger import Ledger, LedgerError
from agent.operators import OperatorStore
from agent.ratelimit import FailureLimiter
from agent.session import EndReason, Session, SessionError
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
        self.tariff: Tariff = config.tariff
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
                                       self.tariff, self.tz)
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
            elif cp["limit_seconds"] != s.limit_seconds:  # its extension reached the ledger
                self.sessions[sid] = replace(s, limit_seconds=cp["limit_seconds"])
        for sid, cp in stored.items():
            if sid not in self.sessions:  # its start reached the ledger
                self.sessions[sid] = Session.from_checkpoint(cp, mono)
                if cp.get("voucher_code"):
                    self.voucher_codes[sid] = cp["voucher_code"]

    def _checkpoint(self, s: Session, mono: float) -> dict[str, Any]:
        return {**s.to_checkpoint(mono), "voucher_code": self.voucher_codes.get(s.id)}

    # ---------------------------------------------------------------- authentication

    def login(self, name: str, password: str) -> dict[str, Any]:
        account = self.operators.get(name)
        # verify against a dummy hash when the name is unknown, so timing tells nothing
        encoded = account["password_hash"] if account else _dummy_hash()
        if not verify_password(password, encoded) or not account or not account.get("active"):
            log.info("failed operator login for %r", name)
            raise ServiceError(401, "bad_credentials", "wrong name or password")
        token = self.tokens.issue(name, account["role"], self.clock.monotonic(),
                                  OPERATOR_TOKEN_TTL)
        log.info("operator %s logged in", name)
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
            "fee_so_far": s.fee_so_far(now, self.tariff, self.tz),
            "currency": self.tariff.currency,
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
            })
        return {"backlog": self.ledger.backlog(), "stations": stations}

    def active_sessions(self) -> list[dict[str, Any]]:
        self.tick()
        return [self.session_view(s) for s in self.sessions.values()]

    def station_session(self, station_id: str) -> dict[str, Any]:
        self._require_station(station_id)
        self.tick()
        s = self._session_on(station_id)
        if s is None:
            return {"session": None}
        view = self.session_view(s)
        code = self.voucher_codes.get(s.id)
        if code is not None:
            view["voucher_minutes_left"] = max(
                0, ((s.limit_seconds or 0) - s.billed_seconds(self.clock.monotonic())) // 60)
        return {"session": view}

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
        if self._session_on(station_id) is not None:
            raise ServiceError(409, "station_busy", f"station {station_id} already has a session")
        s = Session(id=_new_id(), station=station_id, started_at=self.clock.now(),
                    mono_start=self.clock.monotonic(),
                    limit_seconds=None if minutes is None else minutes * 60,
                    category=category or None, operator=operator)
        with self._ledger_write():
            self.ledger.start_session(self._checkpoint(s, self.clock.monotonic()))
            self.sessions[s.id] = s
        log.info("session %s started on %s by %s (%s min)", s.id, station_id, operator,
                 "open" if minutes is None else minutes)
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
        return self.session_view(extended)

    def end(self, session_id: str, reason: EndReason) -> dict[str, Any]:
        return self._close(self._get_session(session_id), reason)

    def end_on_station(self, station_id: str, reason: EndReason) -> dict[str, Any]:
        self._require_station(station_id)
        self.tick()
        s = self._session_on(station_id)
        if s is None:
            raise ServiceError(404, "no_session", f"station {station_id} has no session")
        return self._close(s, reason)

    def _close(self, s: Session, reason: EndReason) -> dict[str, Any]:
        closed = s.close(self.clock.monotonic(), reason, self.tariff, self.tz)
        record = {**closed.to_record(), "at": closed.ended_at.isoformat()}
        code = self.voucher_codes.get(s.id)
        with self._ledger_write():
            stored = self.ledger.close_session(record, code, closed.billed_seconds)
            del self.sessions[s.id]
            self.voucher_codes.pop(s.id, None)
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
        try:
            with self._ledger_write():
                self.ledger.start_session(self._checkpoint(s, mono), code)
                self.sessions[s.id] = s
        except BaseException:
            if s.id not in self.sessions:
                self.voucher_codes.pop(s.id, None)
            raise
        log.info("session %s started on %s from a voucher (%d s left)", s.id, station_id,
                 v.seconds_left)
        return self.session_view(s)

    def quote(self, minutes: int, category: str | None, start: datetime | None = None) -> int:
        self._check_category(category)
        return compute_fee(self.tariff, start or self.clock.now(), minutes * 60, self.tz,
                           category)


@functools.cache
def _dummy_hash() -> str:
    """A real hash of a random password: a login with an unknown name costs the same."""
    return hash_password(secrets.token_hex(16))
