"""Vouchers: sell one, look one up, void one, and start a session from one (redeem).

The rules are the meter's (``agent.meter.vouchers``): ``check_redeemable`` decides a
redemption, ``Voucher.refund`` what a void gives back; the ledger reserves, spends and voids
through ``VoucherEntry``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from agent.errors import DomainError
from agent.ledger import LedgerError
from agent.meter.session import Session
from agent.meter.tariff import UnknownCategory, compute_fee
from agent.meter.vouchers import (
    InvalidCode,
    Voucher,
    VoucherEntry,
    VoucherRejected,
    check_redeemable,
    generate_code,
    normalize_code,
)
from agent.ratelimit import FailureLimiter
from agent.usecases.sessions import Sessions
from agent.usecases.state import AgentState, new_id

log = logging.getLogger(__name__)

REDEEM_FAILURE_LIMIT = 5
REDEEM_FAILURE_WINDOW = 60.0
MAX_VOUCHER_MINUTES = 24 * 60


class Vouchers:
    def __init__(self, state: AgentState, sessions: Sessions) -> None:
        self.state = state
        self.sessions = sessions
        self.limiter = FailureLimiter(REDEEM_FAILURE_LIMIT, REDEEM_FAILURE_WINDOW)

    def sell(self, minutes: int, category: str | None, operator: str) -> dict[str, Any]:
        st = self.state
        st.check_category(category)
        if not 1 <= minutes <= MAX_VOUCHER_MINUTES:
            raise DomainError("bad_minutes",
                              f"minutes must be between 1 and {MAX_VOUCHER_MINUTES}")
        now = st.clock.now()
        try:
            price = compute_fee(st.tariff, now, minutes * 60, st.tz, category)
        except UnknownCategory as exc:
            raise DomainError("unknown_category", str(exc)) from None
        code = generate_code()
        while st.ledger.voucher(code) is not None:  # 50 random bits: next to never
            code = generate_code()
        v = Voucher(code=code, cac_id=st.config.cac_id, seconds_total=minutes * 60,
                    seconds_left=minutes * 60, price=price, category=category or None,
                    sold_at=now, expires_at=now + timedelta(days=st.config.voucher_valid_days),
                    sold_by=operator)
        record = {"type": "voucher_sale", "id": new_id(), "at": now.isoformat(),
                  "minutes": minutes, "price": price, "currency": st.tariff.currency,
                  "category": v.category, "expires_at": v.expires_at.isoformat(),
                  "operator": operator}
        with st.ledger_write():
            st.ledger.sell_voucher(v.to_dict(), record)
        log.info("voucher sold by %s: %d min for %d", operator, minutes, price)
        st.audit_action(f"operator:{operator}", "voucher.sell", str(record["id"]),
                        minutes=minutes, price=price, category=v.category)
        return {"code": v.code, "minutes": minutes, "price": price,
                "currency": st.tariff.currency, "category": v.category,
                "expires_at": v.expires_at.isoformat(), "sale_id": record["id"]}

    def _entry(self, code_text: str) -> tuple[str, VoucherEntry]:
        try:
            code = normalize_code(code_text)
        except InvalidCode as exc:
            raise DomainError("bad_code", str(exc)) from None
        entry = self.state.ledger.voucher(code)
        if entry is None:
            raise DomainError("unknown_voucher", "no such voucher at this centre")
        return code, VoucherEntry.from_dict(entry)

    def info(self, code_text: str) -> dict[str, Any]:
        _, entry = self._entry(code_text)
        v = entry.voucher
        now = self.state.clock.now()
        return {"code": v.code, "minutes": v.seconds_total // 60, "minutes_left": v.minutes_left,
                "seconds_left": v.seconds_left, "price": v.price, "category": v.category,
                "sold_at": v.sold_at.isoformat(), "expires_at": v.expires_at.isoformat(),
                "expired": v.is_expired(now), "void": v.void, "void_reason": v.void_reason,
                "in_use": entry.in_use is not None}

    def listing(self) -> list[dict[str, Any]]:
        """The vouchers still in the live ledger file, newest first, as ``info`` gives."""
        codes = [e["voucher"]["code"] for e in self.state.ledger.vouchers()]
        out = [self.info(code) for code in codes]
        return sorted(out, key=lambda v: v["sold_at"], reverse=True)

    def void(self, code_text: str, reason: str, operator: str) -> dict[str, Any]:
        st = self.state
        code, entry = self._entry(code_text)
        v = entry.voucher
        record = {"type": "void", "id": new_id(), "at": st.clock.now().isoformat(),
                  "ref": entry.sale_id, "amount": v.refund, "currency": st.tariff.currency,
                  "minutes_voided": v.minutes_left, "reason": reason, "operator": operator}
        try:
            with st.ledger_write():
                stored = st.ledger.void_voucher(code, reason, record)
        except LedgerError as exc:
            raise DomainError("cannot_void", str(exc)) from None
        log.info("voucher sale %s voided by %s", entry.sale_id, operator)
        st.audit_action(f"operator:{operator}", "voucher.void", entry.sale_id, reason=reason,
                        refund=v.refund)
        return stored

    def redeem(self, station_id: str, code_text: str,
               profile: dict[str, str] | None = None) -> dict[str, Any]:
        """Start a session on a station from a voucher; failures count toward a 429."""
        st = self.state
        st.require_station(station_id)
        mono = st.clock.monotonic()
        if self.limiter.blocked(station_id, mono):
            wait = max(1, round(self.limiter.retry_after(station_id, mono)))
            raise DomainError("too_many_attempts", f"too many wrong codes; try again in {wait} s",
                              retry_after=wait)
        self.sessions.tick()
        st.require_unlocked(station_id)
        if st.session_on(station_id) is not None:
            raise DomainError("station_busy", "this station already has a session")
        try:
            code = normalize_code(code_text)
            raw = st.ledger.voucher(code)
            entry = None if raw is None else VoucherEntry.from_dict(raw)
            v = check_redeemable(None if entry is None else entry.voucher, st.config.cac_id,
                                 st.clock.now())
        except InvalidCode as exc:
            self.limiter.record_failure(station_id, mono)
            raise DomainError("bad_code", str(exc)) from None
        except VoucherRejected as exc:
            self.limiter.record_failure(station_id, mono)
            raise DomainError(f"voucher_{exc.reason}", str(exc)) from None
        assert entry is not None
        if entry.in_use:
            raise DomainError("voucher_in_use", "this voucher is in use on another station")
        s = Session(id=new_id(), station=station_id, started_at=st.clock.now(),
                    mono_start=mono, limit_seconds=v.seconds_left, category=v.category,
                    voucher_id=entry.sale_id, profile=profile)
        st.voucher_codes[s.id] = code
        st.session_tariffs[s.id] = st.tariff
        try:
            with st.ledger_write():
                st.ledger.start_session(st.checkpoint_of(s, mono), code)
                st.sessions[s.id] = s
        except BaseException:
            if s.id not in st.sessions:
                st.voucher_codes.pop(s.id, None)
                st.session_tariffs.pop(s.id, None)
            raise
        log.info("session %s started on %s from a voucher (%d s left)", s.id, station_id,
                 v.seconds_left)
        st.audit_action(f"station:{station_id}", "voucher.redeem", entry.sale_id,
                        session=s.id, seconds_left=v.seconds_left)
        return st.session_view(s)
