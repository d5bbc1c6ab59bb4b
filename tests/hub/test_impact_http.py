"""The impact report over HTTP and the content_use records through MQTT ingest: an
in-process hub on a real broker; records published as an agent publishes them."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion

from hub import users
from hub.daemon import Hub
from hub.store import Store
from tests.hub.apitoken import auth, make_token
from tests.hub.factories import CAC, OTHER, hub_config, usage
from tests.hub.test_impact import content, visit
from wire.messages import Usage
from wire.topics import Kind, cac_topic

PASSWORD = "impact-pass-123"
TIMEOUT = 10.0


@pytest.fixture
async def hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-impact",
                     reports={"min_cell": 3})
    with Store(cfg.db_path) as store, store.transaction():
        users.add_user(store.db, "viewer", "viewer", PASSWORD, time.time())
    h = Hub(cfg)
    await h.start()
    assert await asyncio.to_thread(h.link.wait_connected, TIMEOUT)
    try:
        yield h
    finally:
        await h.stop()


def url(hub: Hub, path: str) -> str:
    return f"http://127.0.0.1:{hub.http_port}{path}"


def publish(port: int, cac: str, payloads: list[bytes]) -> None:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"agent-{cac}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for p in payloads:
            c.publish(cac_topic(cac, Kind.USAGE), p, qos=1).wait_for_publish(TIMEOUT)
    finally:
        c.disconnect()
        c.loop_stop()


async def until(cond: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def negative_content(seq: int) -> bytes:
    """A content_use batch whose count is negative: what a broken agent could send."""
    raw = msgspec.to_builtins(Usage(records=[content(seq, "2024-05-03", {"khan": 1})]))
    raw["records"][0]["opens"]["khan"] = -40
    return json.dumps(raw).encode()


async def test_ingest_refuses_negative_and_foreign_content_use(
        hub: Hub, mosquitto: MosquittoBroker) -> None:
    counters = hub.ingest.counters
    before = counters.snapshot().rejected
    good = [visit(i, gender="f", purpose="egov") for i in range(1, 5)]
    foreign = content(5, "2024-05-03", {"khan": 50}, cac=OTHER)  # OTHER's, on CAC's topic
    await asyncio.to_thread(publish, mosquitto.port, CAC, [
        usage(*good), negative_content(5), usage(foreign),
        usage(content(5, "2024-05-03", {"wikipedia-fr": 7}))])
    await until(lambda: hub.ingest.store.watermark(CAC) == 5, "the good records")
    after = counters.snapshot().rejected
    assert after["invalid"] == before.get("invalid", 0) + 1
    assert after["foreign"] == before.get("foreign", 0) + 1
    assert hub.ingest.store.count_records() == 5  # neither bad message left a record
    token = make_token(hub.config.db_path, "t")
    async with aiohttp.ClientSession() as http:
        async with http.get(url(hub, "/metrics"), headers=auth(token)) as resp:
            text = await resp.text()
        assert 'reason="foreign"' in text
        async with http.get(url(hub, "/api/v1/reports/impact?from=2024-05&to=2024-05"),
                            headers=auth(token)) as resp:
            assert resp.status == 200
            rep = await resp.json()
    row = rep["rows"][0]
    assert rep["min_cell"] == 3 and row["cac"] == CAC and row["visits"] == 4
    assert row["content"] == [{"package": "wikipedia-fr", "opens": 7}]
    assert row["gender"] == {"f": 4} and row["purpose"] == {"egov": 4}


async def test_the_api_csv_and_page(hub: Hub, mosquitto: MosquittoBroker) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    recs = [visit(i, gender="f" if i % 3 else "m", purpose="job") for i in range(1, 9)]
    recs.append(visit(9, ended="2024-06-02T10:00:00+00:00"))
    await asyncio.to_thread(publish, mosquitto.port, CAC, [usage(*recs)])
    await until(lambda: hub.ingest.store.watermark(CAC) == 9, "the records")
    token = make_token(hub.config.db_path, "t")
    base = "/api/v1/reports/impact"
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(url(hub, f"{base}?from=2024-05&to=2024-06")) as resp:
            assert resp.status == 401  # a token or a login
        for query, bad in (("from=2024-06&to=2024-05", "from"), ("from=2024-5&to=2024-06",
                           "from"), ("from=2020-01&to=2024-06", "to"),
                           ("from=2024-05&to=2024-06&by=station", "by")):
            async with http.get(url(hub, f"{base}?{query}"), headers=auth(token)) as resp:
                assert resp.status == 400
                body = await resp.json()
                assert body["field"] == bad and body["error"] == "bad_request"
        async with http.get(url(hub, f"{base}?from=2024-05&to=2024-06&by=region"),
                            headers=auth(token)) as resp:
            rep = await resp.json()
        assert [(r["month"], r["region"], r["visits"]) for r in rep["rows"]] == [
            ("2024-05", "oriental", 8), ("2024-06", "oriental", "<3")]
        # f 6, m 2: the 6 shown would give the 2 away
        assert rep["rows"][0]["gender"] == {"f": "x", "m": "<3"}
        assert rep["rows"][0]["purpose"] == {"job": 8}
        # the CSV and the page need a dashboard login
        async with http.get(url(hub, "/reports/impact.csv?from=2024-05&to=2024-06"),
                            allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.post(url(hub, "/login"), data={"name": "viewer",
                             "password": PASSWORD, "next": "/"}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(url(hub, "/reports/impact.csv?from=2024-05&to=2024-06"
                                     "&by=region")) as resp:
            assert resp.status == 200 and resp.content_type == "text/csv"
            rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0] == ["month", "region", "measure", "key", "value"]
        assert ["2024-05", "oriental", "visits", "", "8"] in rows
        assert ["2024-06", "oriental", "visits", "", "<3"] in rows
        async with http.get(url(hub, "/reports/impact.csv?from=2024-05&to=2024-04")) as r:
            assert r.status == 400 and (await r.json())["field"] == "from"
        async with http.get(url(hub, "/reports/impact?from=2024-05&to=2024-06")) as resp:
            assert resp.status == 200
            page = await resp.text()
        assert 'id="impact"' in page and "<svg" in page and 'data-month="2024-06"' in page
        async with http.get(url(hub, "/reports/impact?from=2024-05&to=2021-06")) as resp:
            assert resp.status == 400 and 'id="impact-error"' in await resp.text()
