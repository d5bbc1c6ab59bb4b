"""Clocks: billed time comes from a monotonic clock, timestamps from the wall clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (billing)."""
        ...

    def now(self) -> datetime:
        """Aware UTC wall-clock time (timestamps, tariff bands, expiry)."""
        ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock tests move by hand; wall and monotonic time can be moved separately."""

    def __init__(self, start: datetime | None = None, mono: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        self._mono = mono

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)

    def jump_wall(self, seconds: float) -> None:
        """The wall clock is set (NTP, wrong RTC): the monotonic clock does not move."""
        self._wall += timedelta(seconds=seconds)
