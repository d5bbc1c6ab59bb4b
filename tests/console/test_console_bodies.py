"""Issue 16: console form bodies aiohttp cannot parse answered 500 from request.post(), on
the login page before any check; /console/report.csv?day=9999-12-31 answered 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, start_agent
from console.test_console_security import logged_in

# (Content-Type, body) pairs the review sent
BAD_BODIES = [
    ("multipart/form-data", b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n"),
    ("multipart/form-data; boundary=x",
     b"--x\r\nContent-Disposition: form-data\r\n\r\nv\r\n--x--\r\n"),  # a part without name
    ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=\"a\""),
    ("application/x-www-form-urlencoded", b"name=\xff\xfe&password=\xc3"),
    ("application/x-www-form-urlencoded; charset=bogus", b"name=a&password=b"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"n\x00a\x00m"),
    ("multipart/form-data; boundary=", b"----\r\n"),
]


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="manager"):
        yield a


@pytest.mark.parametrize(("ctype", "body"), BAD_BODIES)
async def test_unreadable_form_bodies_are_4xx_before_and_after_login(
        agent: Agent, ctype: str, body: bytes) -> None:
    resp = await agent.client.post("/console/login", data=body,
                                   headers={"Content-Type": ctype}, allow_redirects=False)
    assert 400 <= resp.status < 500, (resp.status, await resp.text())
    await logged_in(agent)
    resp = await agent.client.post("/console/stations/s1/start", data=body,
                                   headers={"Content-Type": ctype}, allow_redirects=False)
    assert 400 <= resp.status < 500, (resp.status, await resp.text())
    assert agent.service.sessions == {}
    assert (await agent.client.get("/console/")).status == 200  # the console still answers


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
async def test_report_at_the_edge_of_the_calendar_is_not_a_500(agent: Agent, day: str) -> None:
    await logged_in(agent)
    for path in (f"/console/report.csv?day={day}", f"/console/report?day={day}"):
        resp = await agent.client.get(path, allow_redirects=False)
        assert resp.status < 500, (path, resp.status, await resp.text())
