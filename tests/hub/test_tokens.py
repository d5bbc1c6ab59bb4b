"""API tokens (CONTRACT §1 `cac-hub add-token`, §9): made by the real command, stored as
hashes only, replaced by a second call, revoked; every /api/v1 path and /metrics answers
401 JSON without one; /metrics is open with metrics_public; sessions come in pages."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import MosquittoBroker

from hub import tokens
from hub.config import load_hub_config
from hub.daemon import Hub
from hub.store import Store
from provisioning.configs import to_toml
from tests.hub.apitoken import add_token_cli, auth
from tests.hub.factories import CAC, hub_config_dict, session, status, usage
from tests.hub.fakecac import FakeCac
from wire.topics import Kind

HubMaker = Callable[..., Any]


@pytest.fixture
async def make_hub(tmp_path: Path, mosquitto: MosquittoBroker
                   ) -> AsyncIterator[HubMaker]:
    hubs: list[Hub] = []

    async def make(**http: Any) -> tuple[Hub, Path]:
        raw = hub_config_dict(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-tokens")
        raw["http"].update(http)
        path = tmp_path / "hub.toml"
        path.write_text(to_toml(raw))
        hub = Hub(load_hub_config(path))
        await hub.start()
        hubs.append(hub)
        return hub, path

    yield make
    for h in hubs:
        await h.stop()


async def get(hub: Hub, path: str, token: str | None = None) -> tuple[int, Any, Any]:
    headers = auth(token) if token else {}
    async with aiohttp.ClientSession(headers=headers) as http, \
            http.get(f"http://127.0.0.1:{hub.http_port}{path}") as resp:
        body = await resp.json() if resp.content_type == "application/json" else \
            await resp.text()
        return resp.status, body, resp.headers


async def test_tokens_are_hashed_replaced_and_revoked(make_hub: HubMaker) -> None:
    hub, toml = await make_hub()
    for path in ("/api/v1", "/api/v1/cacs", f"/api/v1/cacs/{CAC}/sessions", "/api/v1/alarms",
                 "/api/v1/commands", "/api/v1/reports/daily", "/metrics"):
        status, body, headers = await get(hub, path)
        assert status == 401 and body["error"] == "unauthorized", path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert (await get(hub, path, "not-a-token"))[0] == 401
    first = add_token_cli(toml, "scraper", "viewer")

    async def accepted(token: str) -> bool:
        return (await get(hub, "/api/v1/cacs", token))[0] == 200

    await until(lambda: accepted(first))  # within MISS_REFRESH_SECONDS of a refusal
    with Store(hub.config.db_path) as store:  # only the hash is stored
        rows = store.db.execute("SELECT name, role, hash FROM api_tokens").fetchall()
    assert rows == [("scraper", "viewer", tokens.digest(first))]
    assert first not in hub.config.db_path.read_bytes().decode(errors="replace")
    second = add_token_cli(toml, "scraper", "technician")  # the same name: replaced

    async def refused(token: str) -> bool:
        return (await get(hub, "/api/v1/cacs", token))[0] == 401

    await until(lambda: refused(first))
    await until(lambda: accepted(second))
    assert (await get(hub, "/metrics", second))[0] == 200
    await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "hub.cli", "revoke-token",
                                             "--config", str(toml), "--name", "scraper"],
                            check=True, capture_output=True, timeout=60)
    await until(lambda: refused(second))
    # the signed content a CAC syncs needs no token
    assert (await get(hub, "/api/v1/content/catalogue"))[0] == 200


async def until(pred: Callable[[], Any], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_metrics_public_opens_metrics_only(make_hub: HubMaker) -> None:
    hub, _ = await make_hub(metrics_public=True)
    status, text, _ = await get(hub, "/metrics")
    assert status == 200 and "cac_hub_" in text
    assert (await get(hub, "/api/v1/cacs"))[0] == 401


async def test_sessions_come_in_pages(make_hub: HubMaker, mosquitto: MosquittoBroker) -> None:
    hub, toml = await make_hub()
    token = add_token_cli(toml)  # before any request: the guard's first read sees it
    cac = FakeCac(mosquitto.host, mosquitto.port, CAC)
    try:
        await asyncio.to_thread(cac.publish, Kind.STATUS, status())
        await asyncio.to_thread(cac.publish, Kind.USAGE, usage(*(session(i) for i in
                                                                   range(1, 26))))

        async def stored() -> bool:
            st, body, _ = await get(hub, f"/api/v1/cacs/{CAC}/sessions?limit=100", token)
            return st == 200 and len(body) == 25

        await until(stored)
        got: list[str] = []
        path: str | None = f"/api/v1/cacs/{CAC}/sessions?limit=10"
        pages = 0
        while path is not None:
            st, body, headers = await get(hub, path, token)
            assert st == 200 and len(body) <= 10
            got += [r["id"] for r in body]
            pages += 1
            link = headers.get("Link")
            path = link[1:link.index(">")] if link else None
        assert pages == 3 and got == [f"{CAC}-rec-{i}" for i in range(1, 26)]
        assert (await get(hub, f"/api/v1/cacs/{CAC}/sessions", token))[1][0]["id"] == got[0]
        for bad in ("?limit=0", "?limit=10001", "?after=-1", "?after=%C2%B2", "?limit=x"):
            st, body, _ = await get(hub, f"/api/v1/cacs/{CAC}/sessions{bad}", token)
            assert st == 400 and body["error"] == "bad_request", bad
    finally:
        await asyncio.to_thread(cac.close)


async def test_known_tokens_stay_valid_while_the_store_cannot_be_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store outage must not lock monitoring out of /metrics: the tokens last read stay
    valid until the store answers again (then a revoked one is refused)."""
    db_path = tmp_path / "hub.sqlite3"
    store = Store(db_path)
    with store.transaction():
        tok = tokens.add_token(store.db, "prom", "viewer", time.time())
    cache = tokens.TokenCache(db_path)
    assert await cache.lookup(tok) == ("prom", "viewer")

    def down(*_a: object) -> dict[str, tuple[str, str]]:
        raise tokens.StoreError("the store does not answer")

    with monkeypatch.context() as m:
        m.setattr(tokens, "_load", down)
        cache._loaded_at = -float("inf")  # due for a refresh: it fails
        assert await cache.lookup(tok) == ("prom", "viewer")
        assert await cache.lookup("not-a-token") is None
    with store.transaction():
        assert tokens.revoke_token(store.db, "prom")
    cache._loaded_at = -float("inf")  # the store answers again
    assert await cache.lookup(tok) is None
    store.close()
