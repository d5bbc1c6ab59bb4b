"""A real agent API (agent.api.make_app) on a real port of 127.0.0.1, on a background thread
with its own asyncio loop and a FakeClock that tests move: the kiosk talks real HTTP to it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_support import config_dict
from aiohttp import web
from helpers import free_port

from agent.api import EXECUTOR, make_app
from agent.clock import FakeClock
from agent.config import parse_agent_config
from agent.ledger import Ledger
from agent.operators import OperatorStore
from agent.service import AgentService

STEP_TIMEOUT = 15.0


class AgentThread:
    """A real agent API (agent.api.make_app) on a real port, with a FakeClock."""

    def __init__(self, data_dir: Path, **config: Any) -> None:
        """``config``: top-level keys of agent.toml over ``config_dict``'s (e.g. uplink)."""
        self.clock = FakeClock(datetime(2026, 6, 10, 9, 0, tzinfo=UTC))
        self.port = free_port()
        cfg = parse_agent_config({**config_dict(data_dir), **config})
        self.ledger = Ledger(cfg.data_dir, cfg.cac_id, cfg.tz)
        ops = OperatorStore(cfg.data_dir)
        ops.put("amina", "operator", "counter-pass-1", self.clock.now())
        self.service = AgentService(cfg, self.ledger, ops, self.clock)
        self.app = make_app(self.service)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(self.app)
        self._run(self.runner.setup())
        self.site: web.TCPSite | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(STEP_TIMEOUT)

    def up(self) -> None:
        async def start() -> web.TCPSite:
            site = web.TCPSite(self.runner, "127.0.0.1", self.port)
            await site.start()
            return site
        self.site = self._run(start())

    def down(self) -> None:
        assert self.site is not None
        self._run(self.site.stop())
        self.site = None

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a service call on the service's own thread, as the API does."""
        async def go() -> Any:
            return await asyncio.get_running_loop().run_in_executor(
                self.app[EXECUTOR], lambda: fn(*args))
        return self._run(go())

    def advance(self, seconds: float) -> None:
        self.call(self.clock.advance, seconds)

    def close(self) -> None:
        self._run(self.runner.cleanup())
        self.ledger.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
