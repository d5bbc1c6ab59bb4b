"""Console test helpers: the real agent app (API + console) served on 127.0.0.1 from a
thread with a FakeClock the test moves, and the ledger read straight from its files."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_support import PASSWORD, TOKENS, config_dict
from aiohttp import web

from agent.api import make_app
from agent.clock import FakeClock
from agent.config import parse_agent_config
from agent.ledger import Ledger
from agent.operators import OperatorStore
from agent.service import AgentService

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
START = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)  # 10:00 in Casablanca


class ServedAgent:
    """An agent app on a real TCP port, its loop in a thread of its own."""

    def __init__(self, data_dir: Path, config: dict[str, Any] | None = None) -> None:
        self.cfg = parse_agent_config(config or config_dict(data_dir))
        self.clock = FakeClock(START)
        self.ledger = Ledger(self.cfg.data_dir, self.cfg.cac_id, self.cfg.tz)
        self.operators = OperatorStore(self.cfg.data_dir)
        self.operators.put("amina", "manager", PASSWORD, self.clock.now())
        self.operators.put("youssef", "operator", PASSWORD, self.clock.now())
        self.service = AgentService(self.cfg, self.ledger, self.operators, self.clock)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="served-agent", daemon=True)
        self.port = 0
        self._thread.start()
        if not self._ready.wait(20):
            raise RuntimeError("the agent did not start within 20 s")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(make_app(self.service), shutdown_timeout=2.0)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(20)
        self.ledger.close()
        self.operators.close()

    def api(self, method: str, path: str, token: str | None = None,
            body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """A JSON call to /api/v1 (stdlib HTTP, from the test thread)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + "/api/v1" + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def station(self, sid: str, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, Any]:
        return self.api(method, f"/stations/{sid}{path}", TOKENS[sid], body)


def ledger_records(data_dir: Path) -> list[dict[str, Any]]:
    """Every record in the ledger files, read straight from disk (outbox + archive),
    deduplicated by id: the reference the day close is checked against."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((data_dir / "outbox").glob("*.jsonl")):  # unacknowledged segments
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out[rec["id"]] = rec
    for path in sorted((data_dir / "archive").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                out.setdefault(rec["id"], rec)
    return list(out.values())


def ledger_net(records: list[dict[str, Any]]) -> int:
    """Cash sessions + vouchers sold - void refunds, in centimes."""
    total = 0
    for rec in records:
        if rec["type"] == "session":
            total += rec["fee"]
        elif rec["type"] == "voucher_sale":
            total += rec["price"]
        elif rec["type"] == "void":
            total -= rec["amount"]
    return total
