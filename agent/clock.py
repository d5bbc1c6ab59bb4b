"""Clocks: billed time comes from a monotonic clock, timestamps from the wall clock.

``boot()`` tells how long an agent was stopped without trusting the wall clock: the
kernel's boot id and its boot-time clock (which counts across processes, and suspend)
measure an outage exactly while the machine did not reboot; only across a reboot (a power
cut) does the wall clock have to be trusted.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (billing)."""
        ...

    def now(self) -> datetime:
        """Aware UTC wall-clock time (timestamps, tariff bands, expiry)."""
        ...

    def boot(self) -> tuple[str, float] | None:
        """(this boot's id, seconds since boot) or None where the system has no such clock."""
        ...


BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def boot(self) -> tuple[str, float] | None:
        try:
            boot_id = BOOT_ID_FILE.read_text(encoding="ascii").strip()
            return boot_id, time.clock_gettime(time.CLOCK_BOOTTIME)
        except (OSError, AttributeError, UnicodeDecodeError):
            return None


class FakeClock:
    """A clock tests move by hand; wall and monotonic time can be moved separately."""

    def __init__(self, start: datetime | None = None, mono: float = 1000.0) -> None:
        self._wall = start or datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        self._mono = mono
        self.boot_id = "fake-boot-1"  # a test sets another one to stand for a reboot

    def boot(self) -> tuple[str, float] | None:
        return self.boot_id, self._mono

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
