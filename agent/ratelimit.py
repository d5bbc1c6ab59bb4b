"""Sliding-window limit on failed attempts per key (CONTRACT §4: 5 failed redemptions in 60 s).

The limiter lives in ``common.lockout`` (pure: ``now`` is passed in).
"""

from __future__ import annotations

from common.lockout import DEFAULT_LIMIT as DEFAULT_LIMIT
from common.lockout import DEFAULT_WINDOW_SECONDS as DEFAULT_WINDOW_SECONDS
from common.lockout import FailureLimiter as FailureLimiter
