"""`GET /api/v1` on the agent: a JSON index whose links all answer (issue 13)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, start_agent

from agent import __version__


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        yield a


@pytest.mark.parametrize("path", ["/api/v1", "/api/v1/"])
async def test_index_names_the_program_and_its_endpoints(agent: Agent, path: str) -> None:
    resp = await agent.client.get(path)
    assert resp.status == 200
    body = await resp.json()
    assert body["program"] == "cac-agent" and body["version"] == __version__
    assert body["links"]["console"] == "/console/"
    paths = {e["path"]: e["methods"] for e in body["endpoints"]}
    assert paths["/api/v1/sessions"] == ["GET", "POST"]
    assert paths["/api/v1/health"] == ["GET"]
    assert "/api/v1/stations/{sid}/redeem" in paths
    assert "/api/v1/content" in paths  # routes added by other modules are listed too


async def test_every_link_and_plain_endpoint_of_the_index_answers(agent: Agent) -> None:
    body = await (await agent.client.get("/api/v1")).json()
    plain = [e["path"] for e in body["endpoints"] if "GET" in e["methods"] and "{" not in
             e["path"]]
    assert len(plain) >= 5
    for path in [*body["links"].values(), *plain]:
        resp = await agent.client.get(path, allow_redirects=False)
        # open, a redirect to the login page, or "log in first": never a 404 or a 500
        assert resp.status in (200, 302, 303, 401), (path, resp.status)
