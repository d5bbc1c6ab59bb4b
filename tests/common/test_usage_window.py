"""common/usage_window.py: the usage window of the reporter and the simulator, with ``now``
passed in: no broker, no sleeps."""

from __future__ import annotations

import random

import pytest

from common.usage_window import UsageWindow, reconnect_delays


def fill(w: UsageWindow, now: float, size: int = 10) -> list[int]:
    """Send batches of ``size`` records while the window has room; their last seqs."""
    sent = []
    while (after := w.next_batch()) is not None:
        w.sent(after + size, now)
        sent.append(after + size)
    return sent


def test_at_most_max_in_flight_batches_then_an_ack_makes_room() -> None:
    w = UsageWindow(0, 0.0, max_in_flight=3)
    assert fill(w, 0.0) == [10, 20, 30]
    assert w.next_batch() is None and w.in_flight == 3
    assert w.on_ack(20, 1.0)
    assert w.acked_seq == 20 and w.in_flight == 1
    assert fill(w, 1.0) == [40, 50]


def test_an_old_or_repeated_ack_changes_nothing() -> None:
    w = UsageWindow(5, 0.0)
    fill(w, 0.0)
    assert not w.on_ack(5, 1.0)
    assert not w.on_ack(3, 1.0)
    assert w.acked_seq == 5 and w.sent_seq == 45


def test_no_ack_progress_rewinds_and_doubles_the_wait_up_to_the_maximum() -> None:
    w = UsageWindow(0, 0.0, ack_timeout=20.0, ack_timeout_max=50.0, max_in_flight=1)
    fill(w, 0.0)
    assert w.deadline() == 20.0
    assert not w.due(19.9)
    assert w.due(20.0)
    assert w.sent_seq == 0 and w.in_flight == 0 and w.backoff == 40.0
    assert w.next_batch() == 0  # publish again from acked_seq + 1
    fill(w, 20.0)
    assert not w.due(59.9) and w.due(60.0)
    assert w.backoff == 50.0
    fill(w, 60.0)
    assert w.due(110.0) and w.backoff == 50.0


def test_an_ack_resets_the_wait_and_counts_as_progress() -> None:
    w = UsageWindow(0, 0.0, ack_timeout=10.0, max_in_flight=2)
    fill(w, 0.0)
    assert w.due(10.0) and w.backoff == 20.0
    fill(w, 10.0)
    assert w.on_ack(10, 15.0)
    assert w.backoff == 10.0
    assert w.deadline() == 25.0  # from the progress, not from the older send


def test_nothing_in_flight_is_never_due() -> None:
    w = UsageWindow(0, 0.0)
    assert w.deadline() is None
    assert not w.due(1e9)


def test_restart_publishes_again_from_the_acked_seq() -> None:
    w = UsageWindow(0, 0.0, ack_timeout=5.0)
    fill(w, 0.0)
    w.on_ack(10, 1.0)
    w.due(100.0)
    w.restart(200.0)
    assert (w.sent_seq, w.in_flight, w.backoff) == (10, 0, 5.0)


def test_an_ack_beyond_what_was_sent_moves_sent_seq_too() -> None:
    w = UsageWindow(0, 0.0)
    w.sent(10, 0.0)
    assert w.on_ack(30, 1.0)
    assert w.sent_seq == 30 and w.in_flight == 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"ack_timeout": 0.0}, "ack_timeout"), ({"max_in_flight": 0}, "max_in_flight")])
def test_bad_settings_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        UsageWindow(0, 0.0, **kwargs)  # type: ignore[arg-type]


def test_reconnect_delays_double_with_jitter_up_to_the_maximum() -> None:
    delays = reconnect_delays(random.Random(1), first=1.0, most=8.0, jitter=0.5)
    for base in (1.0, 2.0, 4.0, 8.0, 8.0):
        assert base <= next(delays) <= base * 1.5
