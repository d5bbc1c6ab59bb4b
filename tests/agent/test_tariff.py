"""Fees per CONTRACT §3: worked examples, then properties that must hold for every tariff."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import Band, Tariff
from agent.meter.tariff import (
    UnknownCategory,
    block_count,
    block_prices,
    compute_fee,
    concession_percent,
    quote,
)

CASA = ZoneInfo("Africa/Casablanca")
MIN = 60
BLOCK = 15 * MIN

BASE = Tariff(currency="MAD", block_minutes=15, block_price=200, minimum_blocks=1,
              grace_seconds=60)
NIGHT = Band(start=time(20, 0), end=time(8, 0), block_price=100)
WITH_NIGHT = Tariff(block_price=200, bands=(NIGHT,))

# 10 June 2026: far from Ramadan, Casablanca is at +01:00 all day.
JUNE = datetime(2026, 6, 10, tzinfo=CASA)


def at(hh: int, mm: int, day: datetime = JUNE) -> datetime:
    return day.replace(hour=hh, minute=mm)


# ------------------------------------------------------------------ blocks and grace


def test_session_shorter_than_grace_is_free() -> None:
    assert block_count(BASE, 59) == 0
    assert block_prices(BASE, at(10, 0), 59, CASA) == []
    assert compute_fee(BASE, at(10, 0), 59, CASA) == 0


def test_session_of_exactly_grace_is_charged() -> None:
    assert block_count(BASE, 60) == 1
    assert compute_fee(BASE, at(10, 0), 60, CASA) == 200


def test_zero_grace_and_zero_minimum_charges_nothing_for_zero_seconds() -> None:
    t = Tariff(grace_seconds=0, minimum_blocks=0)
    assert block_count(t, 0) == 0
    assert block_count(t, 1) == 1


def test_zero_grace_with_minimum_charges_even_zero_seconds() -> None:
    t = Tariff(grace_seconds=0, minimum_blocks=2)
    assert block_count(t, 0) == 2


def test_minimum_blocks_applies_to_a_short_charged_session() -> None:
    t = Tariff(block_price=200, minimum_blocks=4, grace_seconds=60)
    assert block_count(t, 61) == 4
    assert compute_fee(t, at(10, 0), 61, CASA) == 800
    assert block_count(t, 4 * BLOCK) == 4
    # beyond the minimum, the started blocks count
    assert block_count(t, 4 * BLOCK + 1) == 5
    assert compute_fee(t, at(10, 0), 4 * BLOCK + 1, CASA) == 1000


def test_started_block_is_charged_in_full() -> None:
    assert block_count(BASE, BLOCK) == 1
    assert block_count(BASE, BLOCK + 1) == 2
    assert compute_fee(BASE, at(10, 0), BLOCK + 1, CASA) == 400
    assert block_count(BASE, 2 * BLOCK - 1) == 2
    assert block_count(BASE, 10 * BLOCK) == 10


def test_block_count_is_exact_for_huge_durations() -> None:
    # ceil via floats would go wrong here; the integer path must not
    t = Tariff(block_minutes=1, grace_seconds=0, minimum_blocks=0)
    d = 60 * (10**17) + 1
    assert block_count(t, d) == 10**17 + 1


def test_negative_seconds_and_naive_start_are_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        block_count(BASE, -1)
    with pytest.raises(ValueError, match="negative"):
        compute_fee(BASE, at(10, 0), -1, CASA)
    with pytest.raises(ValueError, match="aware"):
        block_prices(BASE, datetime(2026, 6, 10, 10, 0), 600, CASA)
    with pytest.raises(ValueError, match="aware"):
        compute_fee(BASE, datetime(2026, 6, 10, 10, 0), 600, CASA)


# ------------------------------------------------------------------ time-of-day bands


def test_night_band_session_crossing_20_00() -> None:
    # blocks start 19:30, 19:45, 20:00 (inclusive: night), 20:15
    assert block_prices(WITH_NIGHT, at(19, 30), 60 * MIN, CASA) == [200, 200, 100, 100]
    assert compute_fee(WITH_NIGHT, at(19, 30), 60 * MIN, CASA) == 600


def test_night_band_session_crossing_08_00() -> None:
    # blocks start 07:40, 07:55 (night), 08:10 (day)
    assert block_prices(WITH_NIGHT, at(7, 40), 45 * MIN, CASA) == [100, 100, 200]
    # 08:00 itself is outside: the band's end is exclusive
    assert block_prices(WITH_NIGHT, at(7, 45), 30 * MIN, CASA) == [100, 200]


def test_night_band_wraps_past_midnight() -> None:
    # 23:30, 23:45, 00:00, 00:15 are all night
    assert block_prices(WITH_NIGHT, at(23, 30), 60 * MIN, CASA) == [100] * 4
    assert block_prices(WITH_NIGHT, at(12, 0), 30 * MIN, CASA) == [200, 200]


def test_band_is_matched_on_local_time_whatever_zone_started_at_is_in() -> None:
    # 18:50 UTC is 19:50 in Casablanca in June: the second block (20:05 local) is night
    start_utc = datetime(2026, 6, 10, 18, 50, tzinfo=UTC)
    assert block_prices(WITH_NIGHT, start_utc, 30 * MIN, CASA) == [200, 100]
    assert block_prices(WITH_NIGHT, start_utc, 30 * MIN, ZoneInfo("UTC")) == [200, 200]


def test_first_matching_band_in_file_order_wins() -> None:
    evening = Band(start=time(18, 0), end=time(22, 0), block_price=300)
    t = Tariff(block_price=200, bands=(evening, NIGHT))
    assert block_prices(t, at(21, 0), BLOCK, CASA) == [300]  # both match: evening is first
    assert block_prices(t, at(23, 0), BLOCK, CASA) == [100]  # only night matches
    assert block_prices(t, at(17, 0), BLOCK, CASA) == [200]  # none: the default
    swapped = Tariff(block_price=200, bands=(NIGHT, evening))
    assert block_prices(swapped, at(21, 0), BLOCK, CASA) == [100]


def test_free_band_gives_free_blocks() -> None:
    t = Tariff(block_price=200, bands=(Band(time(12, 0), time(13, 0), 0),))
    assert block_prices(t, at(11, 45), 30 * MIN, CASA) == [200, 0]


# ------------------------------------------------------------------ concessions


def test_concession_of_odd_total_rounds_down() -> None:
    t = Tariff(block_price=125, concessions={"student": 50, "senior": 10})
    assert sum(block_prices(t, at(10, 0), 3 * BLOCK, CASA)) == 375
    assert compute_fee(t, at(10, 0), 3 * BLOCK, CASA, "student") == 187  # not 188
    assert compute_fee(t, at(10, 0), 1 * BLOCK, CASA, "senior") == 112  # 112.5 -> 112


def test_full_concession_is_free() -> None:
    t = Tariff(block_price=200, concessions={"disabled": 100})
    assert compute_fee(t, at(10, 0), 2 * BLOCK, CASA, "disabled") == 0


def test_zero_concession_and_no_category_charge_in_full() -> None:
    t = Tariff(block_price=200, concessions={"guest": 0})
    assert compute_fee(t, at(10, 0), 2 * BLOCK, CASA, "guest") == 400
    assert compute_fee(t, at(10, 0), 2 * BLOCK, CASA, None) == 400
    assert compute_fee(t, at(10, 0), 2 * BLOCK, CASA, "") == 400


def test_unknown_category_names_it_and_the_known_ones() -> None:
    t = Tariff(concessions={"student": 50, "senior": 30})
    with pytest.raises(UnknownCategory, match=r"'teacher'.*senior, student") as info:
        compute_fee(t, at(10, 0), 2 * BLOCK, CASA, "teacher")
    assert isinstance(info.value, ValueError)
    assert info.value.category == "teacher"
    assert info.value.known == ["senior", "student"]


def test_unknown_category_fails_even_for_a_free_session() -> None:
    with pytest.raises(UnknownCategory, match="none"):
        compute_fee(BASE, at(10, 0), 0, CASA, "student")


def test_concession_percent() -> None:
    t = Tariff(concessions={"student": 50})
    assert concession_percent(t, "student") == 50
    assert concession_percent(t, None) == 0
    assert concession_percent(t, "") == 0


# ------------------------------------------------------------------ Casablanca and Ramadan
# In 2026 Africa/Casablanca leaves +01 for +00 on 15 Feb at 02:00 UTC (03:00 local becomes
# 02:00 again) and returns to +01 on 22 Mar at 02:00 UTC (02:00 local becomes 03:00).

RAMADAN_STARTS = datetime(2026, 2, 15, 2, 0, tzinfo=UTC)
RAMADAN_ENDS = datetime(2026, 3, 22, 2, 0, tzinfo=UTC)


def test_zone_data_has_the_2026_ramadan_offset_changes() -> None:
    eps = timedelta(seconds=1)
    assert (RAMADAN_STARTS - eps).astimezone(CASA).utcoffset() == timedelta(hours=1)
    assert RAMADAN_STARTS.astimezone(CASA).utcoffset() == timedelta(0)
    assert RAMADAN_STARTS.astimezone(CASA).time() == time(2, 0)
    assert (RAMADAN_ENDS - eps).astimezone(CASA).utcoffset() == timedelta(0)
    assert RAMADAN_ENDS.astimezone(CASA).utcoffset() == timedelta(hours=1)
    assert RAMADAN_ENDS.astimezone(CASA).time() == time(3, 0)


def test_block_falls_into_a_band_only_because_clocks_go_back() -> None:
    band = Band(start=time(2, 0), end=time(2, 30), block_price=50)
    t = Tariff(block_price=200, bands=(band,))
    start = datetime(2026, 2, 15, 1, 45, tzinfo=CASA)  # 00:45 UTC, at +01
    # block starts, local: 01:45+01 02:00+01 02:15+01 02:30+01 02:45+01 | 02:00+00 02:15+00
    # Wall-clock arithmetic would put blocks 5 and 6 at 03:00 and 03:15, outside the band.
    expected = [200, 50, 50, 200, 200, 50, 50]
    assert block_prices(t, start, 7 * BLOCK, CASA) == expected
    assert block_prices(t, start.astimezone(UTC), 7 * BLOCK, CASA) == expected
    assert compute_fee(t, start, 7 * BLOCK, CASA) == 800


def test_block_leaves_a_band_only_because_clocks_go_forward() -> None:
    band = Band(start=time(2, 0), end=time(3, 0), block_price=50)
    t = Tariff(block_price=200, bands=(band,))
    start = datetime(2026, 3, 22, 1, 30, tzinfo=CASA)  # 01:30 UTC, at +00
    # block starts, local: 01:30+00 01:45+00 | 03:00+01 03:15+01; 02:xx never happens that day
    assert block_prices(t, start, 4 * BLOCK, CASA) == [200, 200, 200, 200]
    # the same local times a week later, with no offset change, do hit the band
    later = datetime(2026, 3, 29, 1, 30, tzinfo=CASA)
    assert block_prices(t, later, 4 * BLOCK, CASA) == [200, 200, 50, 50]


# ------------------------------------------------------------------ quote


def test_quote_reads_a_naive_start_as_local_time() -> None:
    q = quote(WITH_NIGHT, CASA, 30, datetime(2026, 6, 10, 19, 50), None)
    # blocks at 19:50 and 20:05 local; read as UTC both would be night and cost 200
    assert q == {"minutes": 30, "fee": 300, "currency": "MAD"}


def test_quote_with_aware_start_and_category() -> None:
    t = Tariff(block_price=200, bands=(NIGHT,), concessions={"student": 50})
    q = quote(t, CASA, 30, datetime(2026, 6, 10, 18, 50, tzinfo=UTC), "student")
    assert q == {"minutes": 30, "fee": 150, "currency": "MAD"}


def test_quote_rejects_negative_minutes_and_unknown_category() -> None:
    with pytest.raises(ValueError, match="negative"):
        quote(BASE, CASA, -1, at(10, 0), None)
    with pytest.raises(UnknownCategory):
        quote(BASE, CASA, 30, at(10, 0), "student")


# ------------------------------------------------------------------ properties

ZONES = [CASA, ZoneInfo("UTC"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kathmandu"),
         ZoneInfo("Australia/Lord_Howe")]

hhmm = st.builds(time, st.integers(0, 23), st.integers(0, 59))
bands = st.builds(Band, start=hhmm, end=hhmm, block_price=st.integers(0, 5000))
categories = st.from_regex(r"[a-z0-9_-]{1,8}", fullmatch=True)
tariffs = st.builds(
    Tariff,
    currency=st.just("MAD"),
    block_minutes=st.one_of(st.sampled_from([1, 5, 15, 30, 60]), st.integers(1, 24 * 60)),
    block_price=st.integers(0, 5000),
    minimum_blocks=st.integers(0, 6),
    grace_seconds=st.integers(0, 600),
    bands=st.lists(bands, max_size=4).map(tuple),
    concessions=st.dictionaries(categories, st.integers(0, 100), max_size=3),
)
starts = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31),
    timezones=st.sampled_from(ZONES),
)
zones = st.sampled_from(ZONES)
durations = st.integers(0, 8 * 3600)

FAST = settings(max_examples=150, deadline=None)


@FAST
@given(tariffs, starts, durations, zones)
def test_prop_no_concession_fee_is_sum_of_blocks(
    t: Tariff, start: datetime, d: int, tz: ZoneInfo
) -> None:
    prices = block_prices(t, start, d, tz)
    assert len(prices) == block_count(t, d)
    allowed = {t.block_price} | {b.block_price for b in t.bands}
    assert set(prices) <= allowed
    fee = compute_fee(t, start, d, tz)
    assert fee == sum(prices)
    assert fee >= 0
    assert isinstance(fee, int)


@FAST
@given(tariffs, starts, durations, durations, zones)
def test_prop_fee_never_decreases_as_time_grows(
    t: Tariff, start: datetime, d1: int, d2: int, tz: ZoneInfo
) -> None:
    short, long_ = sorted((d1, d2))
    cat = min(t.concessions, default=None)
    assert compute_fee(t, start, short, tz, cat) <= compute_fee(t, start, long_, tz, cat)
    assert compute_fee(t, start, short, tz) <= compute_fee(t, start, long_, tz)
    # the longer session's blocks extend the shorter one's
    assert block_prices(t, start, long_, tz)[: block_count(t, short)] == block_prices(
        t, start, short, tz)


@FAST
@given(tariffs, starts, durations, zones, st.data())
def test_prop_concession_never_raises_the_fee(
    t: Tariff, start: datetime, d: int, tz: ZoneInfo, data: st.DataObject
) -> None:
    full = compute_fee(t, start, d, tz)
    for cat, pct in t.concessions.items():
        fee = compute_fee(t, start, d, tz, cat)
        assert 0 <= fee <= full
        assert fee == full * (100 - pct) // 100
    unknown = data.draw(categories.filter(lambda c: c not in t.concessions))
    with pytest.raises(UnknownCategory):
        compute_fee(t, start, d, tz, unknown)


@FAST
@given(tariffs, starts, durations, zones, zones)
def test_prop_prices_depend_on_the_instant_not_on_how_it_is_written(
    t: Tariff, start: datetime, d: int, tz: ZoneInfo, other: ZoneInfo
) -> None:
    assert block_prices(t, start, d, tz) == block_prices(t, start.astimezone(other), d, tz)
