"""The usage publication window of a CAC (CONTRACT §6): pure, ``now`` passed in.

Records ``acked_seq + 1 ..`` are published in batches, at most ``max_in_flight`` of them
unacknowledged. The hub's ack moves ``acked_seq``; when no ack makes progress for
``ack_timeout`` seconds, everything after ``acked_seq`` is published again and the wait
doubles up to ``ack_timeout_max``. The agent's reporter and the hub's simulator both run it;
which records a batch holds is the caller's business.

Also the reconnect backoff both use: doubling delays with jitter.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

ACK_TIMEOUT = 20.0  # no ack progress for this long: publish again from acked_seq + 1
ACK_TIMEOUT_MAX = 300.0  # each fruitless re-publication doubles the wait, up to this
MAX_IN_FLIGHT = 4  # usage batches published and not yet acknowledged
RECONNECT_MIN = 1.0  # first retry delay; doubles up to RECONNECT_MAX
RECONNECT_MAX = 60.0
RECONNECT_JITTER = 0.5  # each delay is stretched by a random 0..50%


@dataclass(frozen=True, slots=True)
class _InFlight:
    last_seq: int
    sent_at: float


class UsageWindow:
    """What has been sent and acknowledged on one connection, and what to send next."""

    def __init__(self, acked_seq: int, now: float, *, ack_timeout: float = ACK_TIMEOUT,
                 ack_timeout_max: float = ACK_TIMEOUT_MAX,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        if not ack_timeout > 0:
            raise ValueError(f"ack_timeout must be positive, got {ack_timeout!r}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {max_in_flight!r}")
        self.initial_timeout = ack_timeout
        self.ack_timeout_max = max(ack_timeout, ack_timeout_max)
        self.max_in_flight = max_in_flight
        self.acked_seq = acked_seq
        self.sent_seq = acked_seq
        self.backoff = ack_timeout  # the current wait for ack progress
        self._last_progress = now
        self._in_flight: deque[_InFlight] = deque()

    @property
    def in_flight(self) -> int:
        """Batches published and not yet acknowledged."""
        return len(self._in_flight)

    def restart(self, now: float) -> None:
        """A new connection: publish again from ``acked_seq + 1``, with the first wait."""
        self._in_flight.clear()
        self.sent_seq = self.acked_seq
        self._last_progress = now
        self.backoff = self.initial_timeout

    def next_batch(self) -> int | None:
        """The seq after which the next batch starts, or None while the window is full."""
        if len(self._in_flight) >= self.max_in_flight:
            return None
        return self.sent_seq

    def sent(self, last_seq: int, now: float) -> None:
        """A batch ending at ``last_seq`` was published at ``now``."""
        self._in_flight.append(_InFlight(last_seq, now))
        self.sent_seq = last_seq

    def on_ack(self, seq: int, now: float) -> bool:
        """The hub stored everything up to ``seq``; False (nothing changes) if it is not news.

        The caller checks first that ``seq`` is not beyond its last record.
        """
        if seq <= self.acked_seq:
            return False
        self.acked_seq = seq
        self.sent_seq = max(self.sent_seq, seq)
        self._last_progress = now
        self.backoff = self.initial_timeout
        while self._in_flight and self._in_flight[0].last_seq <= seq:
            self._in_flight.popleft()
        return True

    def deadline(self) -> float | None:
        """When the ack timeout fires if nothing comes; None with nothing in flight."""
        if not self._in_flight:
            return None
        return max(self._in_flight[0].sent_at, self._last_progress) + self.backoff

    def due(self, now: float) -> bool:
        """True if the ack timeout has fired at ``now``: the window then rewinds to
        ``acked_seq`` (the caller publishes again from there) and the wait doubles."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self.backoff = min(self.backoff * 2, self.ack_timeout_max)
        self._in_flight.clear()
        self.sent_seq = self.acked_seq
        self._last_progress = now
        return True


def reconnect_delays(rng: random.Random | None = None, *, first: float = RECONNECT_MIN,
                     most: float = RECONNECT_MAX,
                     jitter: float = RECONNECT_JITTER) -> Iterator[float]:
    """Delays before successive reconnection attempts: doubling from ``first`` to ``most``,
    each stretched by a random 0..``jitter`` so that a fleet that lost its broker at the same
    moment does not come back at the same moment."""
    uniform = (rng or random).uniform
    backoff = first
    while True:
        yield backoff * (1 + uniform(0, jitter))
        backoff = min(backoff * 2, most)
