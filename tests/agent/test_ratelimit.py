"""Sliding-window failure limiter (agent/ratelimit.py); time moves by argument, no sleeping."""

from __future__ import annotations

import pytest

from agent.ratelimit import FailureLimiter

T0 = 1000.0


def fail(limiter: FailureLimiter, key: str, times: list[float]) -> None:
    for t in times:
        limiter.record_failure(key, t)


def test_defaults_match_contract() -> None:
    limiter = FailureLimiter()
    assert limiter.limit == 5
    assert limiter.window_seconds == 60.0


def test_five_failures_then_blocked() -> None:
    limiter = FailureLimiter()
    for i in range(5):
        assert not limiter.blocked("s1", T0 + i), f"blocked before failure {i + 1}"
        limiter.record_failure("s1", T0 + i)
    # The sixth attempt within 60 s is refused.
    assert limiter.blocked("s1", T0 + 5)


def test_four_failures_not_blocked() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0, T0 + 1, T0 + 2, T0 + 3])
    assert not limiter.blocked("s1", T0 + 4)


def test_unblocks_after_window() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0] * 5)
    assert limiter.blocked("s1", T0 + 59.999)
    assert not limiter.blocked("s1", T0 + 60.0)
    assert not limiter.blocked("s1", T0 + 3600)


def test_window_slides() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0, T0 + 10, T0 + 20, T0 + 30, T0 + 40])
    assert limiter.blocked("s1", T0 + 50)
    # At T0+60 the first failure leaves the window: only 4 remain.
    assert not limiter.blocked("s1", T0 + 60)
    limiter.record_failure("s1", T0 + 61)
    assert limiter.blocked("s1", T0 + 62)
    # Next to age out is T0+10, at T0+70.
    assert limiter.blocked("s1", T0 + 69.9)
    assert not limiter.blocked("s1", T0 + 70)


def test_failures_spread_wider_than_window_never_block() -> None:
    limiter = FailureLimiter()
    for i in range(50):
        t = T0 + i * 15.0  # 4 per minute
        assert not limiter.blocked("s1", t)
        limiter.record_failure("s1", t)


def test_keys_are_independent() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0] * 5)
    fail(limiter, "s2", [T0] * 4)
    assert limiter.blocked("s1", T0 + 1)
    assert not limiter.blocked("s2", T0 + 1)
    assert not limiter.blocked("s3", T0 + 1)
    limiter.reset("s1")
    limiter.record_failure("s2", T0 + 2)
    assert not limiter.blocked("s1", T0 + 3)
    assert limiter.blocked("s2", T0 + 3)


def test_reset_clears_key() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0] * 5)
    limiter.reset("s1")
    assert not limiter.blocked("s1", T0 + 1)
    assert limiter.retry_after("s1", T0 + 1) == 0.0
    limiter.reset("never-seen")  # no error


def test_retry_after() -> None:
    limiter = FailureLimiter()
    assert limiter.retry_after("s1", T0) == 0.0
    fail(limiter, "s1", [T0, T0 + 5, T0 + 10, T0 + 15])
    assert limiter.retry_after("s1", T0 + 16) == 0.0  # 4 failures: not blocked
    limiter.record_failure("s1", T0 + 20)
    assert limiter.retry_after("s1", T0 + 20) == pytest.approx(40.0)
    assert limiter.retry_after("s1", T0 + 50) == pytest.approx(10.0)
    # After retry_after seconds the key is indeed unblocked, and not a moment before.
    wait = limiter.retry_after("s1", T0 + 30)
    assert limiter.blocked("s1", T0 + 30 + wait - 0.001)
    assert not limiter.blocked("s1", T0 + 30 + wait)
    assert limiter.retry_after("s1", T0 + 30 + wait) == 0.0


def test_failures_while_blocked_extend_the_block() -> None:
    limiter = FailureLimiter()
    fail(limiter, "s1", [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4])
    # Five more failures recorded while blocked keep it blocked past the first five.
    fail(limiter, "s1", [T0 + 30, T0 + 31, T0 + 32, T0 + 33, T0 + 34])
    assert limiter.blocked("s1", T0 + 65)
    assert limiter.retry_after("s1", T0 + 65) == pytest.approx(25.0)
    assert limiter.blocked("s1", T0 + 89.9)
    assert not limiter.blocked("s1", T0 + 90)


def test_custom_limit_and_window() -> None:
    limiter = FailureLimiter(limit=2, window_seconds=10.0)
    fail(limiter, "k", [0.0, 1.0])
    assert limiter.blocked("k", 2.0)
    assert limiter.retry_after("k", 2.0) == pytest.approx(8.0)
    assert not limiter.blocked("k", 10.0)


def test_per_key_memory_bounded_by_limit() -> None:
    limiter = FailureLimiter(limit=5)
    fail(limiter, "s1", [T0 + i * 0.01 for i in range(10_000)])
    assert len(limiter._failures["s1"]) == 5
    assert limiter.blocked("s1", T0 + 100.5)


def test_idle_keys_dropped() -> None:
    limiter = FailureLimiter()
    for i in range(1000):
        limiter.record_failure(f"key-{i}", T0)
    assert len(limiter) == 1000
    # One call after the window has passed sweeps every stale key, not just its own.
    limiter.record_failure("fresh", T0 + 61)
    assert len(limiter) == 1
    assert not limiter.blocked("key-0", T0 + 61)


def test_blocked_and_retry_after_drop_stale_key() -> None:
    limiter = FailureLimiter()
    limiter.record_failure("a", T0)
    limiter.record_failure("b", T0)
    assert len(limiter) == 2
    assert not limiter.blocked("a", T0 + 60)
    assert limiter.retry_after("b", T0 + 60) == 0.0
    assert len(limiter) == 0


def test_memory_stays_bounded_under_churn() -> None:
    limiter = FailureLimiter(limit=5, window_seconds=60.0)
    # A new key every second for an hour: only about a window's worth is ever held.
    peak = 0
    for i in range(3600):
        limiter.record_failure(f"k{i}", T0 + i)
        peak = max(peak, len(limiter))
    assert peak <= 121


def test_blocked_does_not_create_keys() -> None:
    limiter = FailureLimiter()
    for i in range(100):
        assert not limiter.blocked(f"probe-{i}", T0)
        assert limiter.retry_after(f"probe-{i}", T0) == 0.0
    assert len(limiter) == 0


@pytest.mark.parametrize(
    ("limit", "window"),
    [(0, 60.0), (-1, 60.0), (True, 60.0), (5, 0.0), (5, -1.0), (5, float("inf"))],
)
def test_bad_parameters_rejected(limit: int, window: float) -> None:
    with pytest.raises(ValueError, match="must be (a )?positive"):
        FailureLimiter(limit=limit, window_seconds=window)
