"""Log a reason the first time it happens only (DESIGN, principle 4: logged once, counted)."""

from __future__ import annotations

import logging
from collections.abc import Hashable


class LogOnce:
    """Logs each key's message once; with ``max_keys``, at most that many distinct keys (then
    one line saying so), so a flood of distinct bad input cannot grow memory or the log."""

    def __init__(self, log: logging.Logger, max_keys: int | None = None,
                 full_message: str = "too many distinct reasons: from now on they are "
                                     "only counted") -> None:
        self.log = log
        self.max_keys = max_keys
        self.full_message = full_message
        self._seen: set[Hashable] = set()
        self._full_logged = False

    def __call__(self, key: Hashable, msg: str, *args: object,
                 level: int = logging.WARNING) -> bool:
        """Log ``msg % args`` at ``level`` if ``key`` is new; True if it was logged."""
        if key in self._seen:
            return False
        if self.max_keys is not None and len(self._seen) >= self.max_keys:
            if not self._full_logged:
                self._full_logged = True
                self.log.warning(self.full_message)
            return False
        self._seen.add(key)
        self.log.log(level, msg, *args)
        return True
