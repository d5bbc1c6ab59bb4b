"""The hub against a real Mosquitto and over real HTTP: acks, fleet, sessions, metrics."""

from __future__ import annotations

import asyncio
import queue
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as paho
import pytest
from helpers import MosquittoBroker

from hub import daemon
from hub import mqtt as hub_mqtt
from hub.daemon import Hub
from tests.hub.apitoken import auth, make_token
from tests.hub.factories import CAC, OTHER, health, hub_config, session, status, usage
from tests.hub.fakecac import FakeCac, hub_status
from wire.topics import FROM_CAC, Kind, cac_topic

CONNECT_TIMEOUT = 10.0

HubFactory = Callable[..., Any]
VICTIM = "ma-oriental-victim-009"


@pytest.fixture
async def start_hub(tmp_path: Path,
                    request: pytest.FixtureRequest) -> AsyncIterator[HubFactory]:
    """start_hub(broker, **config) -> a started Hub (stopped at the end of the test)."""
    hubs: list[Hub] = []

    async def start(broker: MosquittoBroker, data_dir: Path | None = None,
                    **extra: Any) -> Hub:
        # a hub id of the test's own: the shared broker keeps each hub's persistent session
        extra.setdefault("hub_id", f"hub-{request.node.name[5:30].replace('_', '-')}")
        cfg = hub_config(str(data_dir or tmp_path / "hub"), broker.port, 0, **extra)
        hub = Hub(cfg)
        await hub.start()
        hubs.append(hub)
        assert await asyncio.to_thread(hub.link.wait_connected, CONNECT_TIMEOUT)
        return hub

    yield start
    for hub in hubs:
        await hub.stop()


_TOKENS: dict[Path, str] = {}


def token_of(hub: Hub) -> str:
    """A viewer API token in this hub's store (made once per store)."""
    db = hub.config.db_path
    if db not in _TOKENS:
        _TOKENS[db] = make_token(db)
    return _TOKENS[db]


async def get_json(hub: Hub, path: str, status: int = 200) -> Any:
    async with aiohttp.ClientSession(headers=auth(token_of(hub))) as http, \
            http.get(f"http://127.0.0.1:{hub.http_port}{path}") as resp:
        assert resp.status == status, await resp.text()
        assert resp.content_type == "application/json"
        return await resp.json()


async def get_text(hub: Hub, path: str) -> tuple[str, str]:
    async with aiohttp.ClientSession(headers=auth(token_of(hub))) as http, \
            http.get(f"http://127.0.0.1:{hub.http_port}{path}") as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


async def until(predicate: Callable[[], Any], within: float = CONNECT_TIMEOUT) -> None:
    try:
        async with asyncio.timeout(within):
            while True:  # polls the real HTTP API, as a dashboard would
                if await predicate():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"condition not met within {within} s") from None


def cac(broker: MosquittoBroker, cac_id: str = CAC, **kw: Any) -> FakeCac:
    return FakeCac(broker.host, broker.port, cac_id, **kw)


SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})?'
                    r" (-?[0-9.e+]+|NaN|[+-]Inf)$")


def parse_prometheus(text: str) -> dict[str, float]:
    """Check every line of the text format; return {"name{labels}": value}."""
    assert text.endswith("\n")
    out: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge"), line
            typed.add(name)
            continue
        assert SAMPLE.match(line), f"not a sample line: {line!r}"
        key, value = line.rsplit(" ", 1)
        assert key.split("{")[0] in typed, f"sample before its TYPE: {line!r}"
        out[key] = float(value)
    return out


async def test_cac_round_trip(mosquitto: MosquittoBroker, start_hub: HubFactory) -> None:
    hub = await start_hub(mosquitto)
    agent = await asyncio.to_thread(cac, mosquitto)
    try:
        agent.publish(Kind.STATUS, status(), retain=True)
        agent.publish(Kind.HEALTH, health(backlog=4), qos=0)
        agent.publish(Kind.USAGE, usage(session(1, fee=100), session(2, fee=200)))
        assert await asyncio.to_thread(agent.wait_ack, 2) == [2]
        agent.publish(Kind.USAGE, usage(session(4, fee=400)))  # out of order: 3 is missing
        assert await asyncio.to_thread(agent.next_ack) == 2
        agent.publish(Kind.USAGE, usage(session(1, fee=100)))  # a re-send
        assert await asyncio.to_thread(agent.next_ack) == 2
        agent.publish(Kind.USAGE, usage(session(3, fee=300), session(4, fee=400)))
        assert await asyncio.to_thread(agent.next_ack) == 4

        # the session broker may hold other tests' retained statuses: look for ours
        [row] = [r for r in await get_json(hub, "/api/v1/cacs") if r["cac_id"] == CAC]
        assert row["online"] is True
        assert row["backlog"] == 4 and row["health"]["backlog"] == 4
        assert row["version"] == "0.1.0" and row["boot_id"] == "boot-1"
        assert row["health"]["stations"][0]["id"] == "s1"
        assert row["last_seen"].endswith("+00:00")

        sessions = await get_json(hub, f"/api/v1/cacs/{CAC}/sessions")
        assert [s["seq"] for s in sessions] == [1, 2, 3, 4]  # each once, by seq
        assert [s["fee"] for s in sessions] == [100, 200, 300, 400]
        assert set(sessions[0]) >= {"id", "station", "started_at", "ended_at",
                                    "billed_seconds", "fee", "currency"}

        err = await get_json(hub, "/api/v1/cacs/no-such-cac/sessions", 404)
        assert err["error"] == "not_found" and "no-such-cac" in err["message"]
        err = await get_json(hub, "/api/v1/nothing-here", 404)
        assert err["error"] == "not_found"

        ctype, text = await get_text(hub, "/metrics")
        assert ctype.startswith("text/plain") and "version=0.0.4" in ctype
        m = parse_prometheus(text)
        assert m['cac_hub_messages_total{kind="usage"}'] == 4
        assert m["cac_hub_records_stored_total"] == 4
        assert m["cac_hub_records_duplicate_total"] == 2
        assert m["cac_hub_acks_sent_total"] == 4
        assert m['cac_hub_cacs{state="online"}'] == 1
        assert m[f'cac_hub_cac_backlog{{cac_id="{CAC}"}}'] == 4
        assert m["cac_hub_mqtt_connected"] == 1
        # a scrape limited with name[] (as Prometheus' client libraries take it): only those
        _, text = await get_text(hub, "/metrics?name[]=cac_hub_records_stored_total"
                                      "&name[]=cac_hub_cac_backlog")
        assert parse_prometheus(text) == {"cac_hub_records_stored_total": 4,
                                          f'cac_hub_cac_backlog{{cac_id="{CAC}"}}': 4}
        _, text = await get_text(hub, "/metrics?name[]=cac_hub_messages_total")
        assert set(parse_prometheus(text)) == {
            f'cac_hub_messages_total{{kind="{k}"}}' for k in FROM_CAC}

        _, page = await get_text(hub, "/")  # the dashboard asks for a login first
        assert 'action="/login"' in page  # (tests/hub/test_dashboard*.py log in)

        hs = await asyncio.to_thread(hub_status, mosquitto.host, mosquitto.port,
                                     hub.config.status_id)
        assert hs.state == "online"
    finally:
        await asyncio.to_thread(agent.close)


async def test_refused_messages_are_counted_and_not_acked(
        mosquitto: MosquittoBroker, start_hub: HubFactory) -> None:
    hub = await start_hub(mosquitto)
    agent = await asyncio.to_thread(cac, mosquitto, OTHER)
    try:
        agent.publish(Kind.USAGE, b"{garbage")
        agent.publish(Kind.USAGE, usage(session(1, VICTIM)))  # records of another CAC
        agent.publish(Kind.USAGE, usage(session(1, OTHER)))
        assert await asyncio.to_thread(agent.wait_ack, 1) == [1]  # only the good one
        _, text = await get_text(hub, "/metrics")
        m = parse_prometheus(text)
        assert m['cac_hub_rejected_total{reason="malformed"}'] == 1
        assert m['cac_hub_rejected_total{reason="foreign"}'] == 1
        assert await get_json(hub, f"/api/v1/cacs/{VICTIM}/sessions", 404)
        [only] = await get_json(hub, f"/api/v1/cacs/{OTHER}/sessions")
        assert only["id"] == session(1, OTHER).id
    finally:
        await asyncio.to_thread(agent.close)


async def test_restart_keeps_store_session_and_fleet(
        mosquitto_fresh: MosquittoBroker, start_hub: HubFactory, tmp_path: Path) -> None:
    broker = mosquitto_fresh
    hub = await start_hub(broker)
    agent = await asyncio.to_thread(cac, broker)
    try:
        agent.publish(Kind.STATUS, status(), retain=True)
        agent.publish(Kind.HEALTH, health(backlog=6), qos=0)  # not retained: from the store
        agent.publish(Kind.USAGE, usage(session(1), session(2)))
        assert await asyncio.to_thread(agent.wait_ack, 2) == [2]
        await hub.stop()
        assert (await asyncio.to_thread(hub_status, broker.host, broker.port,
                                        hub.config.status_id)).state == "offline"

        # sent while the hub is down: waits in the hub's persistent session at the broker
        agent.publish(Kind.USAGE, usage(session(3)))
        hub2 = await start_hub(broker)
        assert await asyncio.to_thread(agent.wait_ack, 3) == [3]  # no re-send needed
        [row] = await get_json(hub2, "/api/v1/cacs")
        assert row["cac_id"] == CAC and row["online"] is True
        assert row["backlog"] == 6 and row["health"]["backlog"] == 6
        sessions = await get_json(hub2, f"/api/v1/cacs/{CAC}/sessions")
        assert [s["seq"] for s in sessions] == [1, 2, 3]
    finally:
        await asyncio.to_thread(agent.close)


async def test_silent_cac_goes_offline_and_last_will(
        mosquitto: MosquittoBroker, start_hub: HubFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "TICK_SECONDS", 0.05)
    hub = await start_hub(mosquitto, offline_after_seconds=1)
    stop = asyncio.Event()
    ticker = asyncio.create_task(hub.run(stop))
    silent = await asyncio.to_thread(cac, mosquitto)
    willing = await asyncio.to_thread(cac, mosquitto, OTHER, will=status("offline"))
    try:
        silent.publish(Kind.HEALTH, health(), qos=0)  # then nothing, yet still connected
        willing.publish(Kind.STATUS, status(), retain=True)

        async def online(cac_id: str) -> bool | None:
            rows = {r["cac_id"]: r for r in await get_json(hub, "/api/v1/cacs")}
            return rows[cac_id]["online"] if cac_id in rows else None

        async def silent_offline() -> bool:
            return await online(CAC) is False

        async def willing_online() -> bool:
            # it keeps talking, as an agent does: with offline_after_seconds = 1 its status
            # alone keeps it online for one second, which a loaded machine's poll can miss
            await asyncio.to_thread(willing.publish, Kind.HEALTH, health(), qos=0)
            return await online(OTHER) is True

        await until(willing_online)
        await until(silent_offline, within=5)
        await asyncio.to_thread(willing.vanish)  # the broker publishes its last will

        async def willing_offline() -> bool:
            return await online(OTHER) is False

        await until(willing_offline)
    finally:
        stop.set()
        await ticker
        await asyncio.to_thread(silent.close)
        # clear the retained status this test left on the shared broker
        willing2 = await asyncio.to_thread(cac, mosquitto, OTHER)
        willing2.publish(Kind.STATUS, b"", retain=True)
        await asyncio.to_thread(willing2.close)


async def test_two_workers_share_the_load(mosquitto: MosquittoBroker,
                                          start_hub: HubFactory, tmp_path: Path) -> None:
    """Shared subscriptions: two workers, one store; the agent still gets exact acks."""
    data = tmp_path / "shared"
    w1 = await start_hub(mosquitto, data, shared_subscription=True, worker_id="w1")
    w2 = await start_hub(mosquitto, data, shared_subscription=True, worker_id="w2",
                         hub_id=w1.config.hub_id)
    cac_id = "ma-oriental-shared-003"
    agent = await asyncio.to_thread(cac, mosquitto, cac_id)
    try:
        for seq in range(1, 41):
            agent.publish(Kind.USAGE, usage(session(seq, cac_id)))
        acks = await asyncio.to_thread(agent.wait_ack, 40)
        assert max(acks) == 40
        _, t1 = await get_text(w1, "/metrics")
        _, t2 = await get_text(w2, "/metrics")
        m1, m2 = parse_prometheus(t1), parse_prometheus(t2)
        per_worker = [m['cac_hub_messages_total{kind="usage"}'] for m in (m1, m2)]
        assert sum(per_worker) == 40 and min(per_worker) > 0, per_worker
        assert m1["cac_hub_records_stored_total"] + m2["cac_hub_records_stored_total"] == 40
        sessions = await get_json(w2, f"/api/v1/cacs/{cac_id}/sessions")
        assert [s["seq"] for s in sessions] == list(range(1, 41))
    finally:
        await asyncio.to_thread(agent.close)


async def test_broker_down_at_start_and_restarted(
        mosquitto_fresh: MosquittoBroker, start_hub: HubFactory, tmp_path: Path) -> None:
    broker = mosquitto_fresh
    broker.stop()
    cfg = hub_config(str(tmp_path / "hub"), broker.port, 0, hub_id="hub-broker-down")
    hub = Hub(cfg)
    await hub.start()  # the API runs while the broker is away
    try:
        assert await get_json(hub, "/api/v1/cacs") == []
        _, text = await get_text(hub, "/metrics")
        assert parse_prometheus(text)["cac_hub_mqtt_connected"] == 0
        broker.start()
        assert await asyncio.to_thread(hub.link.wait_connected, CONNECT_TIMEOUT)
        agent = await asyncio.to_thread(cac, broker)
        agent.publish(Kind.USAGE, usage(session(1)))
        assert await asyncio.to_thread(agent.wait_ack, 1) == [1]
        agent.client.disconnect()
        agent.client.loop_stop()

        broker.restart()  # no broker persistence here: the hub must subscribe again

        async def reconnected() -> bool:
            return (hub.ingest.counters.snapshot().plain["mqtt_connects"] == 2
                    and hub.link.connected)

        await until(reconnected)
        agent = await asyncio.to_thread(cac, broker)
        agent.publish(Kind.USAGE, usage(session(2)))
        assert await asyncio.to_thread(agent.wait_ack, 2) == [2]
        await asyncio.to_thread(agent.close)
        _, text = await get_text(hub, "/metrics")
        m = parse_prometheus(text)
        assert m["cac_hub_mqtt_connects_total"] == 2 and m["cac_hub_mqtt_disconnects_total"] == 1
    finally:
        await hub.stop()


async def test_a_publish_from_another_thread_goes_out_at_once(
        mosquitto: MosquittoBroker, start_hub: HubFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest thread runs paho's loop: a command published by the HTTP side (another
    thread) must wake it, not wait for its idle timeout (made 60 s here)."""
    monkeypatch.setattr(hub_mqtt, "IDLE_SECONDS", 60.0)
    hub = await start_hub(mosquitto, flush_seconds=3600)
    got: queue.Queue[bytes] = queue.Queue()
    sub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-cmd-listener")
    sub.on_message = lambda c, u, m: got.put(bytes(m.payload))
    sub.connect(mosquitto.host, mosquitto.port)
    sub.loop_start()
    agent = await asyncio.to_thread(cac, mosquitto)
    try:
        subscribed = sub.subscribe(cac_topic(CAC, Kind.CMD), qos=1)
        assert subscribed[0] == paho.MQTT_ERR_SUCCESS
        # the hub is idle in select() now; then a usage message, acked as usual
        agent.publish(Kind.USAGE, usage(session(1)))
        assert await asyncio.to_thread(agent.wait_ack, 1) == [1]
        await asyncio.sleep(1.0)  # the subscription is in place; the hub idles again
        for n in range(3):
            await asyncio.to_thread(hub.link.publish, cac_topic(CAC, Kind.CMD),
                                    f"command {n}".encode())
            # well within the 60 s the worker would otherwise sleep
            assert await asyncio.to_thread(got.get, True, 5.0) == f"command {n}".encode()
        assert hub.link.connected
    finally:
        sub.loop_stop()
        sub.disconnect()
        await asyncio.to_thread(agent.close)
