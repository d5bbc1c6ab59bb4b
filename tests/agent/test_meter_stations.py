"""agent/meter/stations.py: online window, locks, messages and their expiry (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.errors import DomainError
from agent.meter.stations import (
    MAX_MESSAGE_CHARS,
    STATION_ONLINE_SECONDS,
    Message,
    check_message,
    is_online,
    new_lock,
)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_a_station_is_online_within_the_window_only() -> None:
    assert not is_online(None, 100.0)
    assert is_online(100.0, 100.0 + STATION_ONLINE_SECONDS)
    assert not is_online(100.0, 100.0 + STATION_ONLINE_SECONDS + 0.1)


def test_a_lock_keeps_a_bounded_reason() -> None:
    lock = new_lock("x" * (MAX_MESSAGE_CHARS + 10), "operator:amina", T0)
    assert lock == {"reason": "x" * MAX_MESSAGE_CHARS, "by": "operator:amina",
                    "at": T0.isoformat()}


def test_message_limits_have_stable_codes() -> None:
    assert check_message("  hello  ", None) == "hello"
    with pytest.raises(DomainError, match="at most") as too_long:
        check_message("x" * (MAX_MESSAGE_CHARS + 1), None)
    assert too_long.value.code == "bad_message"
    with pytest.raises(DomainError) as bad_seconds:
        check_message("hi", 0)
    assert bad_seconds.value.code == "bad_seconds"


def test_a_message_expires_on_the_monotonic_clock() -> None:
    m = Message.new("m1", "closing soon", "operator:amina", T0, 50.0, 60)
    assert not m.expired(109.9)
    assert m.expired(110.0)
    assert m.to_view()["expires_at"] == "2026-03-01T10:01:00+00:00"
    assert not Message.new("m2", "hi", "hub", T0, 50.0, None).expired(1e9)
