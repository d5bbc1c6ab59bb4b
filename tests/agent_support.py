"""An agent API on a real aiohttp test server with a fake clock, for the agent's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from agent.api import make_app
from agent.clock import FakeClock
from agent.config import parse_agent_config
from agent.ledger import Ledger
from agent.operators import OperatorStore
from agent.service import AgentService

TOKENS = {"s1": "station-one-token-0001", "s2": "station-two-token-0002"}
PASSWORD = "counter-pass-1"


def config_dict(data_dir: Path) -> dict[str, Any]:
    return {
        "cac_id": "ma-oriental-oujda-001",
        "data_dir": str(data_dir),
        "timezone": "Africa/Casablanca",
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "http": {"host": "127.0.0.1", "port": 0},
        "stations": [{"id": k, "token": v} for k, v in TOKENS.items()],
        "tariff": {"currency": "MAD", "block_minutes": 15, "block_price": 200,
                   "minimum_blocks": 1, "grace_seconds": 60,
                   "bands": [{"from": "20:00", "to": "08:00", "block_price": 100}],
                   "concessions": {"student": 50}},
    }


class Agent:
    def __init__(self, client: TestClient, service: AgentService, clock: FakeClock) -> None:
        self.client = client
        self.service = service
        self.clock = clock
        self.token = ""

    async def req(self, method: str, path: str, token: str | None = None,
                  **kw: Any) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resp = await self.client.request(method, "/api/v1" + path, headers=headers, **kw)
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json()

    async def op(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.req(method, path, self.token, **kw)

    async def st(self, sid: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        return await self.req(method, f"/stations/{sid}{path}", TOKENS[sid], **kw)


async def start_agent(data_dir: Path, aiohttp_client: Callable[..., Any], *,
                      role: str = "operator", clock: FakeClock | None = None,
                      config: dict[str, Any] | None = None) -> AsyncIterator[Agent]:
    """A logged-in agent (operator ``amina`` with ``role``); closes its ledger at the end."""
    cfg = parse_agent_config(config or config_dict(data_dir))
    clock = clock or FakeClock(datetime(2026, 6, 10, 9, 0, tzinfo=UTC))
    ledger = Ledger(cfg.data_dir, cfg.cac_id, cfg.tz)
    operators = OperatorStore(cfg.data_dir)
    operators.put("amina", role, PASSWORD, clock.now())
    service = AgentService(cfg, ledger, operators, clock)
    client = await aiohttp_client(make_app(service))
    a = Agent(client, service, clock)
    status, body = await a.req("POST", "/login", json={"name": "amina", "password": PASSWORD})
    assert status == 200
    a.token = body["token"]
    try:
        yield a
    finally:
        ledger.close()


