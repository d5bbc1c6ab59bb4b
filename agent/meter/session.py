"""The session state machine: pure, driven by an injected monotonic reading.

A session is *active* (a ``Session``) until it is closed into a ``ClosedSession`` record.
Billed time is the monotonic time elapsed since the start, capped at the session's limit,
so a wall-clock jump neither adds nor removes time. Timestamps are derived from the start
timestamp plus billed time, so a record never says it lasted longer than it was billed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from agent.errors import DomainError
from agent.meter.tariff import Tariff, compute_fee

MAX_SESSION_MINUTES = 24 * 60


class EndReason(StrEnum):
    CITIZEN = "citizen"
    OPERATOR = "operator"
    TIME_EXHAUSTED = "time_exhausted"
    IDLE = "idle"
    RESTART_RECOVERY = "restart_recovery"


class SessionError(DomainError, ValueError):
    """A transition that the session's state does not allow (code: ``open_ended``...)."""


@dataclass(frozen=True)
class Session:
    id: str
    station: str
    started_at: datetime  # aware wall-clock time at the start
    mono_start: float  # monotonic reading at the start (only meaningful in this process)
    limit_seconds: int | None  # None: open-ended, paid at the end
    category: str | None = None
    voucher_id: str | None = None
    operator: str | None = None

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        if self.limit_seconds is not None and self.limit_seconds < 0:
            raise ValueError("limit_seconds must not be negative")

    @property
    def open_ended(self) -> bool:
        return self.limit_seconds is None

    def billed_seconds(self, mono_now: float) -> int:
        """Whole seconds billed so far: monotonic elapsed time, capped at the limit."""
        elapsed = max(0, math.floor(mono_now - self.mono_start))
        if self.limit_seconds is not None:
            elapsed = min(elapsed, self.limit_seconds)
        return elapsed

    def remaining_seconds(self, mono_now: float) -> int | None:
        if self.limit_seconds is None:
            return None
        return self.limit_seconds - self.billed_seconds(mono_now)

    def exhausted(self, mono_now: float) -> bool:
        remaining = self.remaining_seconds(mono_now)
        return remaining is not None and remaining <= 0

    def fee_so_far(self, mono_now: float, tariff: Tariff, tz: ZoneInfo) -> int:
        """What the session would cost if it ended now (0 when a voucher pays)."""
        if self.voucher_id is not None:
            return 0
        return compute_fee(tariff, self.started_at, self.billed_seconds(mono_now), tz,
                           self.category)

    def extend(self, minutes: int, mono_now: float) -> Session:
        """Add paid minutes to a fixed-time session that is still running."""
        if self.voucher_id is not None:
            raise SessionError("voucher_session",
                               "a voucher session cannot be extended; redeem another voucher")
        if self.limit_seconds is None:
            raise SessionError("open_ended", "an open-ended session has no limit to extend")
        if self.exhausted(mono_now):
            raise SessionError("session_over", "the session's time is already used up")
        new_limit = self.limit_seconds + minutes * 60
        if new_limit > MAX_SESSION_MINUTES * 60:
            raise SessionError("too_long",
                               f"a session may last at most {MAX_SESSION_MINUTES} minutes")
        return replace(self, limit_seconds=new_limit)

    def close(self, mono_now: float, reason: EndReason, tariff: Tariff,
              tz: ZoneInfo) -> ClosedSession:
        """End the session now (monotonic reading ``mono_now``)."""
        return self.close_billed(self.billed_seconds(mono_now), reason, tariff, tz)

    def close_billed(self, billed: int, reason: EndReason, tariff: Tariff,
                     tz: ZoneInfo) -> ClosedSession:
        """End the session with a known billed time (restart recovery uses its checkpoint)."""
        if billed < 0:
            raise ValueError("billed seconds must not be negative")
        if self.limit_seconds is not None:
            billed = min(billed, self.limit_seconds)
        fee = 0 if self.voucher_id is not None else compute_fee(
            tariff, self.started_at, billed, tz, self.category)
        return ClosedSession(
            id=self.id,
            station=self.station,
            started_at=self.started_at,
            ended_at=self.started_at + timedelta(seconds=billed),
            billed_seconds=billed,
            fee=fee,
            currency=tariff.currency,
            category=self.category,
            voucher_id=self.voucher_id,
            operator=self.operator,
            minutes=None if self.limit_seconds is None else self.limit_seconds // 60,
            end_reason=reason,
        )

    def to_checkpoint(self, mono_now: float) -> dict[str, Any]:
        """What survives a crash: everything but the monotonic origin, plus billed time."""
        return {
            "id": self.id,
            "station": self.station,
            "started_at": self.started_at.isoformat(),
            "limit_seconds": self.limit_seconds,
            "category": self.category,
            "voucher_id": self.voucher_id,
            "operator": self.operator,
            "billed_seconds": self.billed_seconds(mono_now),
        }

    @classmethod
    def from_checkpoint(cls, cp: dict[str, Any], mono_now: float) -> Session:
        """Rebuild a session whose billed time continues from its checkpoint."""
        return cls(
            id=cp["id"],
            station=cp["station"],
            started_at=datetime.fromisoformat(cp["started_at"]),
            mono_start=mono_now - int(cp["billed_seconds"]),
            limit_seconds=cp["limit_seconds"],
            category=cp["category"],
            voucher_id=cp["voucher_id"],
            operator=cp["operator"],
        )


@dataclass(frozen=True)
class ClosedSession:
    """A closed session: the ledger record that the hub receives (same id as the session)."""

    id: str
    station: str
    started_at: datetime
    ended_at: datetime
    billed_seconds: int
    fee: int
    currency: str
    category: str | None
    voucher_id: str | None
    operator: str | None
    minutes: int | None
    end_reason: EndReason

    def to_record(self) -> dict[str, Any]:
        return {
            "type": "session",
            "id": self.id,
            "station": self.station,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "billed_seconds": self.billed_seconds,
            "fee": self.fee,
            "currency": self.currency,
            "category": self.category,
            "voucher_id": self.voucher_id,
            "operator": self.operator,
            "minutes": self.minutes,
            "end_reason": str(self.end_reason),
            "paid_by": "voucher" if self.voucher_id else "cash",
        }
