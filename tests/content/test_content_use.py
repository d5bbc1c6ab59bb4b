"""Content use counted at the site (issue 18, CONTRACT §9b): page opens from the agent's
``/content/`` routes, per local day, package and page, written as content_use ledger records
(increments) when flush_minutes go by, when the local day changes and at a clean stop; never
twice; a search query is never stored."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_support import Agent, config_dict, start_agent
from content_support import STARTER, Hub

from agent.clock import FakeClock
from agent.content import CONTENT
from agent.edge import CONTENT_USE
from tests.agent.test_till import raw_records
from wire.messages import ContentUseRecord, record_from_dict

PID = "guides-admin-fr"


async def started(tmp_path: Path, aiohttp_client: Any, hub: Hub,
                  clock: FakeClock) -> tuple[Agent, Any]:
    hub.store.add(STARTER / PID)
    d = tmp_path / "agent"
    cfg = {**config_dict(d), "content": {"hub_url": hub.url},
           "impact": {"flush_minutes": 5}}
    gen = start_agent(d, aiohttp_client, config=cfg, clock=clock)
    a = await gen.__anext__()
    await a.client.app[CONTENT].sync()
    return a, gen


def content_use(a: Agent) -> list[dict[str, Any]]:
    recs = [r for r in a.service.ledger.outbox() if r["type"] == "content_use"]
    for r in recs:  # each one is what the hub accepts
        assert isinstance(record_from_dict(r), ContentUseRecord)
    return sorted(recs, key=lambda r: int(r["seq"]))


async def wait_records(a: Agent, n: int) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + 10
    while (recs := content_use(a)) and len(recs) < n or not recs:
        assert asyncio.get_running_loop().time() < deadline, f"{len(recs)} of {n} records"
        await asyncio.sleep(0.05)
    return recs


async def open_page(a: Agent, path: str, method: str = "GET", **kw: Any) -> int:
    resp = await a.client.request(method, f"/content/{PID}/{path}", **kw)
    await resp.read()
    return int(resp.status)


async def test_opens_are_flushed_every_flush_minutes_as_increments(
        tmp_path: Path, aiohttp_client: Any, hub: Hub) -> None:
    clock = FakeClock(datetime(2026, 6, 10, 9, 0, tzinfo=UTC))
    a, gen = await started(tmp_path, aiohttp_client, hub, clock)
    for _ in range(3):
        assert await open_page(a, "index.html") == 200
    assert await open_page(a, "carte-identite.html") == 200
    assert await open_page(a, "index.html", "HEAD") == 200  # not an open
    assert await open_page(a, "nope.html") == 404  # not an open
    use = a.client.app[CONTENT_USE]
    assert use.pending() == {"2026-06-10": {PID: 4}}
    await asyncio.sleep(1.5)  # the ticker runs, nothing is due yet
    assert content_use(a) == []
    clock.advance(5 * 60)
    [rec] = await wait_records(a, 1)
    assert rec["day"] == "2026-06-10" and rec["opens"] == {PID: 4}
    assert rec["pages"] == {f"{PID}/index.html": 3, f"{PID}/carte-identite.html": 1}
    assert use.pending() == {}
    # the next record holds only what came after: increments, never the total again
    assert await open_page(a, "index.html") == 200
    clock.advance(5 * 60)
    recs = await wait_records(a, 2)
    assert recs[1]["opens"] == {PID: 1} and recs[1]["pages"] == {f"{PID}/index.html": 1}
    await asyncio.sleep(1.5)  # nothing counted: nothing written
    assert len(content_use(a)) == 2
    await a.client.close()
    with contextlib.suppress(StopAsyncIteration):
        await gen.__anext__()


async def test_a_new_local_day_and_a_clean_stop_write_the_counts(
        tmp_path: Path, aiohttp_client: Any, hub: Hub) -> None:
    # 22:58 UTC = 23:58 in Casablanca (UTC+1): the local day ends in two minutes
    clock = FakeClock(datetime(2026, 6, 10, 22, 58, tzinfo=UTC))
    a, gen = await started(tmp_path, aiohttp_client, hub, clock)
    assert await open_page(a, "index.html") == 200
    clock.advance(120)  # 00:00 local, well before flush_minutes: yesterday is written
    [rec] = await wait_records(a, 1)
    assert rec["day"] == "2026-06-10" and rec["opens"] == {PID: 1}
    assert await open_page(a, "extrait-naissance.html") == 200
    assert a.client.app[CONTENT_USE].pending() == {"2026-06-11": {PID: 1}}
    # a search: its words go nowhere near the ledger
    resp = await a.client.get("/api/v1/content/search",
                              params={"q": "passeport secretword", "lang": "fr"},
                              headers={"Authorization": f"Bearer {a.token}"})
    assert resp.status == 200
    await a.client.close()  # a clean stop writes what is pending
    with contextlib.suppress(StopAsyncIteration):
        await gen.__anext__()
    data = a.service.config.data_dir
    recs = [r for r in raw_records(data) if r["type"] == "content_use"]
    assert sorted((r["day"], r["opens"][PID]) for r in recs) == [
        ("2026-06-10", 1), ("2026-06-11", 1)]
    assert not any(b"secretword" in p.read_bytes() for p in data.rglob("*") if p.is_file())
