"""agent/http_errors.py: every code the agent raises has its status in the one table."""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import DomainError
from agent.http_errors import STATUS, headers_of, status_of

AGENT = Path(__file__).resolve().parents[2] / "agent"


def test_every_raised_code_is_in_the_table() -> None:
    raised: set[str] = set()
    for path in AGENT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        raised.update(re.findall(r'(?:DomainError|SessionError|BadRequest)\(\s*"([a-z_]+)"', text))
        raised.update(re.findall(r'BadRequest\([^)]*?,\s*"([a-z_]+)"\)', text))
    assert raised, "the scan found no codes"
    assert sorted(raised - set(STATUS)) == []


def test_a_lockout_carries_retry_after() -> None:
    exc = DomainError("locked_out", "wait", retry_after=120)
    assert (status_of(exc), headers_of(exc)) == (429, {"Retry-After": "120"})
    assert headers_of(DomainError("station_busy", "busy")) == {}
