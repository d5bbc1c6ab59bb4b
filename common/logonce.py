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


class ParserRejections(logging.Filter):
    """For ``aiohttp.server``: a request aiohttp's parser rejects (over-long headers or
    URL, a bad request line) is logged as one WARNING line without a traceback, at most
    once per client address and ``period`` seconds; other records pass untouched. An
    unauthenticated client can no longer flood the log (issue 16)."""

    def __init__(self, period: float = 60.0, max_addresses: int = 10_000) -> None:
        super().__init__()
        self.period = period
        self.max_addresses = max_addresses
        self._last: dict[str, float] = {}
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        address = str(args[0]) if args else "?"
        now = record.created
        if len(self._last) >= self.max_addresses:
            self._last = {a: t for a, t in self._last.items() if now - t < self.period}
        last = self._last.get(address)
        if last is not None and now - last < self.period:
            self.dropped += 1
            return False
        if len(self._last) >= self.max_addresses:
            self.dropped += 1
            return False
        self._last[address] = now
        record.msg = ("refused a malformed HTTP request from %s: %s (more from this address "
                      "within %.0f s are not logged)")
        record.args = (address, f"{type(exc).__name__}: {exc}"[:200], self.period)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_parser_rejections() -> ParserRejections:
    """Install ``ParserRejections`` on aiohttp's server logger (once); returns it."""
    logger = logging.getLogger("aiohttp.server")
    for f in logger.filters:
        if isinstance(f, ParserRejections):
            return f
    f = ParserRejections()
    logger.addFilter(f)
    return f
