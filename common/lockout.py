"""Failure lockouts: a sliding-window limit on failed attempts per key (CONTRACT §4: 5 failed
redemptions in 60 s) and the login lockout built on it (operators, technicians).

Pure: the caller passes a monotonic ``now`` in seconds; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections import deque

DEFAULT_LIMIT = 5
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_MAX_KEYS = 10_000  # keys are attacker-chosen (names): memory stays bounded


class FailureLimiter:
    """Blocks a key once it has ``limit`` failures within the last ``window_seconds``.

    A failure at time t counts while ``now < t + window_seconds``. Each key keeps only its
    ``limit`` most recent failures (older ones can no longer decide anything), and keys
    whose failures have all aged out are dropped, so memory follows the keys that failed
    within the last window.
    """

    def __init__(
        self, limit: int = DEFAULT_LIMIT, window_seconds: float = DEFAULT_WINDOW_SECONDS,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if not (math.isfinite(window_seconds) and window_seconds > 0):
            raise ValueError(f"window_seconds must be positive, got {window_seconds!r}")
        self.limit = limit
        self.window_seconds = float(window_seconds)
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}
        self._last_sweep = -math.inf

    def __len__(self) -> int:
        """Number of keys currently tracked."""
        return len(self._failures)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        """The key's failures still inside the window at ``now``; drops the key if none."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        horizon = now - self.window_seconds
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures

    def _sweep(self, now: float) -> None:
        # At most once per window, so the cost is amortised over the calls in between.
        if now - self._last_sweep < self.window_seconds:
            return
        self._last_sweep = now
        for key in list(self._failures):
            self._recent(key, now)

    def blocked(self, key: str, now: float) -> bool:
        """True if ``key`` already has ``limit`` failures in the window ending at ``now``."""
        self._sweep(now)
        failures = self._recent(key, now)
        return failures is not None and len(failures) >= self.limit

    def record_failure(self, key: str, now: float) -> None:
        """Count one failed attempt by ``key`` at ``now``."""
        self._sweep(now)
        failures = self._recent(key, now)
        if failures is None:
            failures = self._failures[key] = deque(maxlen=self.limit)
        failures.append(now)
        if len(self._failures) > self.max_keys:  # amortised: then 10% of room again
            self.prune(now)
            while len(self._failures) > self.max_keys * 9 // 10:  # the oldest keys go first
                del self._failures[next(iter(self._failures))]

    def prune(self, now: float) -> None:
        """Drop every key whose failures have all aged out (also when nobody calls)."""
        self._last_sweep = now
        for key in list(self._failures):
            self._recent(key, now)

    def reset(self, key: str) -> None:
        """Forget ``key``'s failures, e.g. after a success."""
        self._failures.pop(key, None)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds from ``now`` until ``key`` is no longer blocked; 0.0 if it is not."""
        failures = self._recent(key, now)
        if failures is None or len(failures) < self.limit:
            return 0.0
        # The deque holds exactly the last ``limit`` failures; the block lifts when the
        # oldest of them leaves the window.
        return max(0.0, failures[0] + self.window_seconds - now)


class LoginLockout:
    """Locks a key (operator name, client address) for ``lock_seconds`` once it has failed
    ``limit`` times within ``window_seconds``. Pure: ``now`` is monotonic seconds."""

    def __init__(self, limit: int, window_seconds: float, lock_seconds: float,
                 max_keys: int = DEFAULT_MAX_KEYS) -> None:
        self._failures = FailureLimiter(limit, window_seconds, max_keys)
        self.lock_seconds = float(lock_seconds)
        self.max_keys = max_keys
        self._locked_until: dict[str, float] = {}

    def __len__(self) -> int:
        """Keys held: with failures in the window or locked."""
        return len(self._failures) + len(self._locked_until)

    def prune(self, now: float) -> None:
        """Forget expired locks and aged-out failures (call it now and then)."""
        self._failures.prune(now)
        for key in [k for k, until in self._locked_until.items() if now >= until]:
            del self._locked_until[key]

    def locked_for(self, key: str, now: float) -> float:
        """Seconds the key stays locked from ``now``; 0.0 if it may try."""
        until = self._locked_until.get(key)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked_until[key]
            return 0.0
        return until - now

    def record_failure(self, key: str, now: float) -> bool:
        """Count a failure; True if this one locked the key."""
        self._failures.record_failure(key, now)
        if self._failures.blocked(key, now):
            self._failures.reset(key)
            self._locked_until[key] = now + self.lock_seconds
            if len(self._locked_until) > self.max_keys:
                self.prune(now)
                while len(self._locked_until) > self.max_keys * 9 // 10:
                    del self._locked_until[next(iter(self._locked_until))]
            return True
        return False

    def reset(self, key: str) -> None:
        """Forget the key's failures (after a successful login)."""
        self._failures.reset(key)
