"""The simulated CACs' prices: a small model of the contract's tariff (CONTRACT §3).

The simulator does not import the agent; its fees are what a CAC on the example tariff of
CONTRACT §2 would charge (tests/hub/test_simulator.py checks them against agent.tariff).
Integer centimes, blocks priced by the local wall-clock time they start at.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY = 24 * 60


def _minute(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True)
class Band:
    """Blocks starting in [start, end) local time (wrapping past midnight) cost block_price."""

    start: time  # whole minutes (HH:MM), as tariffs give them
    end: time
    block_price: int

    def contains(self, t: time) -> bool:
        span = (_minute(self.end) - _minute(self.start)) % _DAY or _DAY
        offset = (_minute(t) - _minute(self.start)) % _DAY
        return offset < span  # start == end: the whole day


@dataclass(frozen=True)
class SimTariff:
    currency: str = "MAD"
    block_minutes: int = 15
    block_price: int = 200
    minimum_blocks: int = 1
    grace_seconds: int = 60
    bands: tuple[Band, ...] = ()
    concessions: Mapping[str, int] = field(default_factory=dict)

    @property
    def block_seconds(self) -> int:
        return self.block_minutes * 60


DEFAULT_TARIFF = SimTariff(  # the example tariff of CONTRACT §2
    currency="MAD", block_minutes=15, block_price=200, minimum_blocks=1, grace_seconds=60,
    bands=(Band(time(20, 0), time(8, 0), 100),), concessions={"student": 50},
)


def fee(tariff: SimTariff, started_at: datetime, billed_seconds: int, tz: ZoneInfo,
        category: str | None = None) -> int:
    """What a session of ``billed_seconds`` from ``started_at`` costs, in centimes."""
    if billed_seconds < tariff.grace_seconds:
        return 0
    blocks = max(tariff.minimum_blocks, -(-billed_seconds // tariff.block_seconds))
    first = started_at.astimezone(UTC)  # step in UTC: offsets change (Ramadan in Morocco)
    total = 0
    for k in range(blocks):
        local = (first + timedelta(minutes=k * tariff.block_minutes)).astimezone(tz).time()
        total += next((b.block_price for b in tariff.bands if b.contains(local)),
                      tariff.block_price)
    off = tariff.concessions.get(category, 0) if category else 0
    return total * (100 - off) // 100
