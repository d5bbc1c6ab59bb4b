"""The session state machine: pure, driven by an injected monotonic reading.

A session is *active* (a ``Session``) until it is closed into a ``ClosedSession`` record.
An active session is ``running`` or ``paused`` (CONTRACT §7). Billed time is the monotonic
time it ran, capped at the session's limit, so a wall-clock jump neither adds nor removes
time; a pause stops it, and so does an outage of the agent (billed time continues from the
last checkpoint, ``from_checkpoint``).

Instants are derived from the monotonic clock too: each session keeps an anchor (a wall
instant and the monotonic reading at that instant) and its ``segments``, the instants at
which billing restarted after a pause or a restart. Block pricing (§3) and a record's
``ended_at`` are read off them, so a record never says it lasted longer than it was billed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from agent.errors import DomainError
from agent.meter.tariff import Segment, Tariff, billed_instant, compute_fee

MAX_SESSION_MINUTES = 24 * 60
MAX_REASON_CHARS = 200
RUNNING, PAUSED = "running", "paused"


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
    paused_mono: float | None = None  # monotonic reading when it was paused; None: running
    pause_reason: str | None = None
    # billing restarted at (instant, billed seconds then), after the start, in order
    segments: tuple[Segment, ...] = ()
    # a wall instant and the monotonic reading then (default: the start)
    anchor_at: datetime | None = None
    anchor_mono: float | None = None
    profile: dict[str, str] | None = None  # CONTRACT §9b: the anonymous visit profile

    def __post_init__(self) -> None:
        if self.started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        if self.limit_seconds is not None and self.limit_seconds < 0:
            raise ValueError("limit_seconds must not be negative")

    @property
    def open_ended(self) -> bool:
        return self.limit_seconds is None

    @property
    def paused(self) -> bool:
        return self.paused_mono is not None

    @property
    def state(self) -> str:
        return PAUSED if self.paused else RUNNING

    def billed_seconds(self, mono_now: float) -> int:
        """Whole seconds billed so far: monotonic running time, capped at the limit."""
        upto = mono_now if self.paused_mono is None else min(mono_now, self.paused_mono)
        elapsed = max(0, math.floor(upto - self.mono_start))
        if self.limit_seconds is not None:
            elapsed = min(elapsed, self.limit_seconds)
        return elapsed

    def _anchor(self) -> tuple[datetime, float]:
        if self.anchor_at is not None and self.anchor_mono is not None:
            return self.anchor_at, self.anchor_mono
        return self.started_at, self.mono_start

    def wall_at(self, mono: float) -> datetime:
        """The instant of monotonic reading ``mono``, counted from the session's anchor."""
        at, ref = self._anchor()
        return at + timedelta(seconds=mono - ref)

    def all_segments(self) -> tuple[Segment, ...]:
        return ((self.started_at, 0), *self.segments)

    def pause(self, mono_now: float, reason: str | None = None) -> Session:
        """Stop billed and remaining time now."""
        if self.paused:
            raise SessionError("session_paused", "the session is already paused")
        if self.exhausted(mono_now):
            raise SessionError("session_over", "the session's time is already used up")
        at, ref = self._anchor()
        return replace(self, paused_mono=mono_now, anchor_at=at, anchor_mono=ref,
                       pause_reason=(reason or "").strip()[:MAX_REASON_CHARS] or None)

    def resume(self, mono_now: float) -> Session:
        """Run again from now: billed time goes on from where the pause stopped it."""
        if self.paused_mono is None:
            raise SessionError("session_running", "the session is running, not paused")
        return self._restarted(mono_now, self.mono_start + (mono_now - self.paused_mono))

    def _restarted(self, mono_now: float, mono_start: float) -> Session:
        at, ref = self._anchor()
        billed = self.billed_seconds(mono_now)
        segs = [s for s in self.segments if s[1] != billed]  # a stretch that billed nothing
        segs.append((self.wall_at(mono_now), billed))
        return replace(self, mono_start=mono_start, paused_mono=None, pause_reason=None,
                       segments=tuple(segs), anchor_at=at, anchor_mono=ref)

    def moved(self, station: str) -> Session:
        return replace(self, station=station)

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
                           self.category, self.segments)

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
            tariff, self.started_at, billed, tz, self.category, self.segments)
        return ClosedSession(
            id=self.id,
            station=self.station,
            started_at=self.started_at,
            ended_at=billed_instant(self.all_segments(), billed).astimezone(
                self.started_at.tzinfo),
            billed_seconds=billed,
            fee=fee,
            currency=tariff.currency,
            category=self.category,
            voucher_id=self.voucher_id,
            operator=self.operator,
            minutes=None if self.limit_seconds is None else self.limit_seconds // 60,
            end_reason=reason,
            profile=self.profile,
        )

    def to_checkpoint(self, mono_now: float) -> dict[str, Any]:
        """What survives a crash: everything but the monotonic readings, plus billed time,
        the state and the instant of the checkpoint (``at``)."""
        return {
            "id": self.id,
            "station": self.station,
            "started_at": self.started_at.isoformat(),
            "limit_seconds": self.limit_seconds,
            "category": self.category,
            "voucher_id": self.voucher_id,
            "operator": self.operator,
            "billed_seconds": self.billed_seconds(mono_now),
            "state": self.state,
            "pause_reason": self.pause_reason,
            "segments": [[at.isoformat(), billed] for at, billed in self.segments],
            "at": self.wall_at(mono_now).isoformat(),
            **({"profile": dict(self.profile)} if self.profile else {}),
        }

    @classmethod
    def from_checkpoint(cls, cp: dict[str, Any], mono_now: float,
                        at: datetime | None = None) -> Session:
        """Rebuild a session whose billed time continues from its checkpoint, now (monotonic
        ``mono_now``, instant ``at``; default: the checkpoint's own instant). A running
        session bills again from ``at``; a paused one stays paused. ValueError, KeyError or
        TypeError for a checkpoint that cannot be read."""
        started_at = datetime.fromisoformat(cp["started_at"])
        billed = cp["billed_seconds"]
        limit = cp["limit_seconds"]
        if isinstance(billed, bool) or not isinstance(billed, int) or billed < 0:
            raise ValueError(f"bad billed_seconds {billed!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"bad limit_seconds {limit!r}")
        for key in ("id", "station"):
            if not isinstance(cp[key], str) or not cp[key]:
                raise ValueError(f"bad {key} {cp[key]!r}")
        segments = tuple((_aware(datetime.fromisoformat(str(a))), int(b))
                         for a, b in cp.get("segments") or ())
        if at is None:
            at = _checkpoint_instant(cp, started_at, billed)
        paused = cp.get("state") == PAUSED
        session = cls(
            id=cp["id"],
            station=cp["station"],
            started_at=_aware(started_at),
            mono_start=mono_now - billed,
            limit_seconds=limit,
            category=cp.get("category"),
            voucher_id=cp.get("voucher_id"),
            operator=cp.get("operator"),
            paused_mono=mono_now if paused else None,
            pause_reason=cp.get("pause_reason") if paused else None,
            segments=segments,
            anchor_at=at,
            anchor_mono=mono_now,
            profile=_profile(cp.get("profile")),
        )
        if paused:
            return session
        return replace(session, paused_mono=mono_now)._restarted(mono_now, mono_now - billed)


def _profile(raw: object) -> dict[str, str] | None:
    """A checkpoint's profile as written by ``to_checkpoint`` (anything else: none; the
    values were checked against [impact] when the profile was given)."""
    if not isinstance(raw, dict):
        return None
    out = {str(k): v for k, v in raw.items()
           if k in ("purpose", "age_band", "gender") and isinstance(v, str)}
    return out or None


def outage_seconds(cp: dict[str, Any], now: datetime,
                   boot: tuple[str, float] | None) -> float:
    """How long ago a checkpoint was written: on the boot-time clock while the machine has
    not rebooted since (a wall-clock jump changes nothing), else on the wall clock; a wall
    clock now behind the checkpoint (no RTC, no NTP yet) counts as no time at all."""
    stamp = cp.get("boot_seconds")
    if boot is not None and cp.get("boot_id") == boot[0] \
            and isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return max(0.0, boot[1] - float(stamp))
    return max(0.0, (now - checkpoint_instant(cp)).total_seconds())


def resume_instant(cp: dict[str, Any], now: datetime, boot: tuple[str, float] | None,
                   outage: float) -> datetime:
    """The instant a resumed session bills again: its checkpoint's instant plus the outage
    on the same boot (its instants stay on the monotonic clocks), else the wall clock (never
    before the checkpoint)."""
    at = checkpoint_instant(cp)
    if boot is not None and cp.get("boot_id") == boot[0] and "boot_seconds" in cp:
        return at + timedelta(seconds=outage)
    return max(now, at)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"{at.isoformat()} has no UTC offset")
    return at


def _checkpoint_instant(cp: dict[str, Any], started_at: datetime, billed: int) -> datetime:
    """When a checkpoint was written: its ``at``, or (written by an older agent, which
    never paused) its start plus its billed time, which is no later."""
    raw = cp.get("at")
    if raw:
        return _aware(datetime.fromisoformat(str(raw)))
    return started_at + timedelta(seconds=billed)


def checkpoint_instant(cp: dict[str, Any]) -> datetime:
    """The instant a readable checkpoint was written (see ``_checkpoint_instant``)."""
    return _checkpoint_instant(cp, _aware(datetime.fromisoformat(cp["started_at"])),
                               int(cp["billed_seconds"]))


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
    profile: dict[str, str] | None = None

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
            **({"profile": dict(self.profile)} if self.profile else {}),
        }
