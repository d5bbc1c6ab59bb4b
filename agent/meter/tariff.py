"""Tariffs and session fees (CONTRACT §3): pure integer arithmetic, no I/O, no clock.

``Tariff`` and ``Band`` are the tariff a CAC charges (validated where they are defined);
``compute_fee`` is the one place a fee is computed.

Time comes in as arguments: the session's start instant and its billed duration, which the
meter measures on a monotonic clock. Every amount is an integer number of centimes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from wire.config_check import ConfigError
from wire.config_check import check_int as _check_int

CATEGORY_RE = re.compile(r"[a-z0-9_-]{1,32}")


@dataclass(frozen=True)
class Band:
    """A time-of-day price: blocks starting in [start, end) local time cost block_price."""

    start: time
    end: time
    block_price: int

    def contains(self, t: time) -> bool:
        """True if local wall-clock time t falls in [start, end), wrapping past midnight."""
        if self.start < self.end:
            return self.start <= t < self.end
        if self.start > self.end:  # wraps midnight, e.g. 20:00 -> 08:00
            return t >= self.start or t < self.end
        return True  # from == to: the whole day


@dataclass(frozen=True)
class Tariff:
    currency: str = "MAD"
    block_minutes: int = 15
    block_price: int = 200
    minimum_blocks: int = 1
    grace_seconds: int = 60
    bands: tuple[Band, ...] = ()
    concessions: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ConfigError("tariff.currency", "must be a 3-letter ISO 4217 code like MAD")
        _check_int("tariff.block_minutes", self.block_minutes, 1, 24 * 60)
        _check_int("tariff.block_price", self.block_price, 0, 10**9)
        _check_int("tariff.minimum_blocks", self.minimum_blocks, 0, 1000)
        _check_int("tariff.grace_seconds", self.grace_seconds, 0, 24 * 3600)
        for i, band in enumerate(self.bands):
            _check_int(f"tariff.bands[{i}].block_price", band.block_price, 0, 10**9)
        for name, pct in self.concessions.items():
            if not CATEGORY_RE.fullmatch(name):
                raise ConfigError(
                    f"tariff.concessions.{name}", "category names are [a-z0-9_-]{1,32}")
            _check_int(f"tariff.concessions.{name}", pct, 0, 100)

    @property
    def block_seconds(self) -> int:
        return self.block_minutes * 60


class UnknownCategory(ValueError):
    """A concession category that the tariff does not define."""

    def __init__(self, category: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"unknown concession category {category!r} (known: {listed})")
        self.category = category
        self.known = known


def block_count(tariff: Tariff, billed_seconds: int) -> int:
    """How many blocks a session of billed_seconds pays for (0 inside the grace period)."""
    if billed_seconds < 0:
        raise ValueError(f"billed_seconds must not be negative, got {billed_seconds}")
    if billed_seconds < tariff.grace_seconds:
        return 0
    started_blocks = -(-billed_seconds // tariff.block_seconds)  # ceil without floats
    return max(tariff.minimum_blocks, started_blocks)


# A stretch of billed time: billing (re)started at ``instant`` with ``billed`` seconds
# already billed. A session that was never paused has one: (its start, 0).
Segment = tuple[datetime, int]


def billed_instant(segments: Sequence[Segment], billed: int) -> datetime:
    """The instant the billed time reached ``billed`` (CONTRACT §3 with pauses): in the last
    segment that had started by then, counted on from its start (in UTC)."""
    at, base = segments[0]
    for seg_at, seg_billed in segments[1:]:
        if seg_billed <= billed:
            at, base = seg_at, seg_billed
    return at.astimezone(UTC) + timedelta(seconds=billed - base)


def block_prices(
    tariff: Tariff, started_at: datetime, billed_seconds: int, tz: ZoneInfo,
    segments: Sequence[Segment] = (),
) -> list[int]:
    """The price of each charged block, in order; bands are matched on local wall-clock time.

    Block ``k`` starts when the billed time reached ``k * block_minutes``: ``started_at +
    k * block_minutes`` without pauses, later with them (``segments``, after the first)."""
    if started_at.tzinfo is None or started_at.utcoffset() is None:
        raise ValueError("started_at must be an aware datetime")
    n = block_count(tariff, billed_seconds)
    # Step in UTC: aware arithmetic in a ZoneInfo zone is wall-clock arithmetic and would
    # misplace blocks across an offset change (Africa/Casablanca around Ramadan).
    segs: list[Segment] = [(started_at, 0), *segments]
    prices: list[int] = []
    for k in range(n):
        local = billed_instant(segs, k * tariff.block_seconds).astimezone(tz).time()
        prices.append(_price_at(tariff, local))
    return prices


def _price_at(tariff: Tariff, local: time) -> int:
    for band in tariff.bands:
        if band.contains(local):
            return band.block_price
    return tariff.block_price


def concession_percent(tariff: Tariff, category: str | None) -> int:
    """Percent off for category; None or "" means none. Raises UnknownCategory."""
    if not category:
        return 0
    try:
        return tariff.concessions[category]
    except KeyError:
        raise UnknownCategory(category, sorted(tariff.concessions)) from None


def compute_fee(
    tariff: Tariff,
    started_at: datetime,
    billed_seconds: int,
    tz: ZoneInfo,
    category: str | None = None,
    segments: Sequence[Segment] = (),
) -> int:
    """The fee in centimes: the sum of block prices less the concession, rounded down."""
    pct = concession_percent(tariff, category)  # an unknown category fails even if free
    total = sum(block_prices(tariff, started_at, billed_seconds, tz, segments))
    return total * (100 - pct) // 100


def quote(
    tariff: Tariff,
    tz: ZoneInfo,
    minutes: int,
    start: datetime,
    category: str | None = None,
) -> dict[str, int | str]:
    """The answer of `cac-agent quote`: the fee of a session of `minutes` from `start`.

    A naive `start` is local wall-clock time in tz (as given on the command line); an aware
    one is used as is.
    """
    if minutes < 0:
        raise ValueError(f"minutes must not be negative, got {minutes}")
    if start.tzinfo is None:
        start = start.replace(tzinfo=tz)
    fee = compute_fee(tariff, start, minutes * 60, tz, category)
    return {"minutes": minutes, "fee": fee, "currency": tariff.currency}
