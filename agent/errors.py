"""The agent's one domain error: a refusal with a stable code, and no HTTP in it.

The core (meter, use cases) raises ``DomainError("station_busy", "...")``; the HTTP edge
(``agent.http_errors``) maps the code to a status in one table, and the console maps it to a
translated text (``err_<code>``).
"""

from __future__ import annotations


class DomainError(Exception):
    """A request the agent refuses; nothing was changed. ``code`` is stable, ``message`` is
    for a person; ``retry_after`` (seconds) when waiting will help (a lockout)."""

    def __init__(self, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
