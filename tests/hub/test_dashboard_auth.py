"""Dashboard logins, roles, CSRF and lockout; commands stored, re-sent when a CAC comes back
online and answered; /api/v1 answers a login cookie or a token, 401 otherwise. An in-process
hub on a real broker."""

from __future__ import annotations

import asyncio
import queue
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import paho.mqtt.client as mqtt
import pytest
from helpers import MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion

from hub import commands, users
from hub.daemon import Hub
from hub.store import Store
from tests.hub.apitoken import auth, make_token
from tests.hub.factories import health, hub_config, status
from wire.messages import Command, CommandAck, decode, encode
from wire.topics import Kind, cac_topic

CAC = "ma-souss-auth-001"
PASSWORD = "dash-pass-123"
TIMEOUT = 10.0


@pytest.fixture
async def hub(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Hub]:
    cfg = hub_config(str(tmp_path / "hub"), mosquitto.port, 0, hub_id="hub-dash-auth",
                     dashboard={"login_failures": 3, "lockout_minutes": 1})
    with Store(cfg.db_path) as store, store.transaction():
        users.add_user(store.db, "tech", "technician", PASSWORD, time.time())
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


async def login(http: aiohttp.ClientSession, hub: Hub, name: str, password: str = PASSWORD
                ) -> int:
    async with http.post(url(hub, "/login"), data={"name": name, "password": password,
                                                   "next": "/"},
                         allow_redirects=False) as resp:
        return resp.status


async def csrf(http: aiohttp.ClientSession, hub: Hub) -> str:
    async with http.get(url(hub, "/alarms")) as resp:
        text = await resp.text()
    found = re.search(r'name="csrf" value="([^"]+)"', text)
    assert found
    return found.group(1)


async def test_login_roles_csrf_and_lockout(hub: Hub) -> None:
    async with aiohttp.ClientSession() as anon:
        async with anon.get(url(hub, "/reports"), allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        for path in ("/api/v1/alarms", "/metrics", "/api/v1/cacs", "/api/v1/commands"):
            async with anon.get(url(hub, path)) as resp:  # no token, no login: 401 JSON
                assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"
        assert await login(anon, hub, "tech", "wrong-password") == 401
        assert await login(anon, hub, "nobody", PASSWORD) == 401

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for _ in range(2):
            assert await login(http, hub, "viewer", "nope-nope") == 401
        assert await login(http, hub, "viewer", "nope-nope") == 401  # third: locked now
        assert await login(http, hub, "viewer") == 429  # even the right password
        assert await login(http, hub, "tech") == 303  # another name is not locked
        async with http.get(url(hub, "/api/v1/alarms")) as resp:  # the login cookie will do
            assert resp.status == 200 and await resp.json() == []

        cookie = next(c for c in http.cookie_jar if c.key == "cac_hub_session")
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        token = await csrf(http, hub)
        async with http.post(url(hub, "/alarms/1/ack"), data={"csrf": "forged"}) as resp:
            assert resp.status == 403
        async with http.post(url(hub, "/logout"), data={"csrf": token},
                             allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get(url(hub, "/"), allow_redirects=False) as resp:
            assert resp.status == 303  # the session is gone


class CmdListener:
    """A CAC's command subscription; answers each command it gets when ``answer`` is set."""

    def __init__(self, port: int) -> None:
        self.got: queue.Queue[Command] = queue.Queue()
        self.answer = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cmd-{CAC}",
                                  clean_session=True)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(cac_topic(CAC, Kind.CMD), qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = decode(bytes(msg.payload), Command)
        self.got.put(cmd)
        if self.answer:
            client.publish(cac_topic(CAC, Kind.CMD_ACK),
                           encode(CommandAck(id=cmd.id, status="done", message="ok")), qos=1)

    def publish(self, kind: Kind, payload: bytes) -> None:
        self.client.publish(cac_topic(CAC, kind), payload, qos=1).wait_for_publish(TIMEOUT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def api(http: aiohttp.ClientSession, hub: Hub, path: str) -> Any:
    async with http.get(url(hub, path)) as resp:
        assert resp.status == 200
        return await resp.json()


async def known(http: aiohttp.ClientSession, hub: Hub) -> bool:
    async with http.get(url(hub, f"/api/v1/cacs/{CAC}")) as resp:
        return resp.status == 200


async def wait_for(pred: Any, what: str) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        got = await pred()
        if got:
            return got
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def test_a_command_to_an_offline_cac_is_sent_again_when_it_returns(
        hub: Hub, mosquitto: MosquittoBroker) -> None:
    cac = await asyncio.to_thread(CmdListener, mosquitto.port)
    try:
        await asyncio.to_thread(cac.publish, Kind.STATUS, status("offline"))
        await asyncio.to_thread(cac.publish, Kind.HEALTH, health())
        await asyncio.to_thread(cac.publish, Kind.STATUS, status("offline"))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            assert await login(http, hub, "viewer") == 303
            await wait_for(lambda: known(http, hub), "the CAC known")
            token = await csrf(http, hub)
            async with http.post(url(hub, f"/cacs/{CAC}/commands"),
                                 data={"csrf": token, "name": "restart"}) as resp:
                assert resp.status == 403  # a viewer may not
            assert await login(http, hub, "tech") == 303
            token = await csrf(http, hub)
            async with http.post(url(hub, f"/cacs/{CAC}/commands"),
                                 data={"csrf": token, "name": "message", "station": "s1",
                                       "text": "closing at 18:00", "seconds": "60"},
                                 allow_redirects=False) as resp:
                assert resp.status == 303
            sent_at = time.time()
            first = await asyncio.to_thread(cac.got.get, True, TIMEOUT)
            assert (first.name, first.station, first.args) == (
                "message", "s1", {"text": "closing at 18:00", "seconds": 60})
            # it expires command_timeout_seconds (default 3600) after it was sent (§7)
            expires = datetime.fromisoformat(first.expires_at or "").timestamp()
            assert abs(expires - (sent_at + 3600)) <= 5, first.expires_at
            [row] = await api(http, hub, "/api/v1/commands")
            assert (row["status"], row["sent_by"], row["sends"]) == ("pending", "tech", 1)
            # the CAC comes back online and now answers: the hub sends the command again
            cac.answer = True
            await asyncio.to_thread(cac.publish, Kind.STATUS, status("online"))
            again = await asyncio.to_thread(cac.got.get, True, TIMEOUT)
            assert again.id == first.id
            assert again.expires_at == first.expires_at  # sent again, not extended
            done = await wait_for(lambda: api(http, hub, f"/api/v1/commands?cac_id={CAC}"),
                                  "the answer")
            await wait_for(lambda: _status_is(http, hub, "done"), "done")
            assert done[0]["id"] == first.id
            async with http.post(url(hub, f"/cacs/{CAC}/commands"),
                                 data={"csrf": token, "name": "set_tariff",
                                       "tariff": "not = [toml"},
                                 allow_redirects=False) as resp:
                # refused on the page again, with what was typed kept to correct it
                page = await resp.text()
                assert resp.status == 400 and 'id="command-error"' in page
                assert "not = [toml</textarea>" in page
    finally:
        await asyncio.to_thread(cac.close)


async def _status_is(http: aiohttp.ClientSession, hub: Hub, want: str) -> bool:
    rows = await api(http, hub, f"/api/v1/commands?cac_id={CAC}")
    return bool(rows) and rows[0]["status"] == want and rows[0]["message"] == "ok"


def test_unanswered_commands_expire(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.sqlite3") as store, store.transaction():
        row = commands.create(store.db, CAC, "lock", {}, None, "tech", 1000.0)
        assert commands.expire(store.db, 1500.0, 600) == 0
        assert commands.expire(store.db, 1601.0, 600) == 1
        assert commands.get(store.db, row.id).status == "expired"  # type: ignore[union-attr]
        # a late answer still counts
        assert commands.record_ack(store.db, CAC, CommandAck(id=row.id, status="done"), 1700.0)
        assert commands.get(store.db, row.id).status == "done"  # type: ignore[union-attr]
        assert not commands.record_ack(store.db, "other-cac", CommandAck(id=row.id,
                                                                         status="failed"), 1.0)
        [entry] = commands.audit_trail(store.db)
        assert (entry["who"], entry["action"], entry["target"]) == ("tech", "command.lock", CAC)


def test_command_forms_are_checked() -> None:
    with pytest.raises(commands.CommandError, match="unknown"):
        commands.build_args("format_disk", {})
    with pytest.raises(commands.CommandError, match="whole CAC"):
        commands.build_args("restart", {"station": "s1"})
    with pytest.raises(commands.CommandError, match="seconds"):
        commands.build_args("message", {"text": "x", "seconds": "-3"})
    args, _ = commands.build_args("set_tariff", {"tariff": "[tariff]\ncurrency = 'MAD'\n"
                                                           "block_minutes = 15\n"
                                                           "block_price = 150\n"})
    assert args == {"tariff": {"currency": "MAD", "block_minutes": 15, "block_price": 150}}


async def test_api_index_lists_the_endpoints_and_every_link_answers(hub: Hub) -> None:
    token = make_token(hub.config.db_path)
    async with aiohttp.ClientSession(headers=auth(token)) as http:
        async with http.get(url(hub, "/api/v1")) as resp:
            assert resp.status == 200
            body = await resp.json()
        assert body["program"] == "cac-hub"
        assert body["links"] == {"metrics": "/metrics", "dashboard": "/"}
        paths = {e["path"] for e in body["endpoints"]}
        assert {"/api/v1/cacs", "/api/v1/cacs/{cac_id}", "/api/v1/alarms",
                "/api/v1/reports/daily"} <= paths
        for path in [*body["links"].values(), *(p for p in paths if "{" not in p)]:
            async with http.get(url(hub, path), allow_redirects=False) as resp:
                assert resp.status in (200, 302, 303), (path, resp.status)


async def test_a_changed_account_ends_its_session(hub: Hub) -> None:
    """Issue 16: a demoted or re-passworded technician kept a valid login for 12 h."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        assert await login(http, hub, "tech") == 303
        async with http.get(url(hub, "/alarms"), allow_redirects=False) as resp:
            assert resp.status == 200
        with Store(hub.config.db_path) as store, store.transaction():  # as add-user does
            users.add_user(store.db, "tech", "viewer", "a-brand-new-password", time.time())
        async with http.get(url(hub, "/alarms"), allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/login")
        async with http.get(url(hub, "/api/v1/alarms")) as resp:
            assert resp.status == 401


def test_lockouts_are_per_name_and_address_and_bounded() -> None:
    """Issue 16: 5 wrong tries for `boss` from anywhere locked the real boss out; failure
    dicts keyed by attacker-chosen names were never pruned (100k names: ~84 MB)."""
    from hub.config import DashboardConfig

    s = users.Sessions(DashboardConfig(login_failures=5, lockout_minutes=15))
    for _ in range(5):
        s.failed("boss", 0.0, "192.0.2.66")
    assert s.locked("boss", 1.0, "192.0.2.66")
    assert not s.locked("boss", 1.0, "192.0.2.10")  # the real boss, from her desk
    for i in range(15):  # one address trying many names is stopped all the same
        s.failed(f"name-{i}", 2.0, "192.0.2.66")
    assert s.locked("anyone", 3.0, "192.0.2.66")
    for i in range(100_000):  # a spray of names from many addresses
        s.failed(f"spray-{i}", 10.0, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(s._lockout) <= 10_000 and len(s._by_address) <= 10_000
    s.prune(10.0 + 15 * 60 + 1)  # once the window has passed, nothing is held
    assert len(s._lockout) == 0 and len(s._by_address) == 0


@pytest.mark.parametrize("nxt", ["/\\evil.example/x", "/\t/evil.example", "//evil.example",
                                 "/\n/evil.example", "https://evil.example/"])
async def test_login_never_redirects_off_site(hub: Hub, nxt: str) -> None:
    """Issue 16: next=/\\evil.example/x and next=/<TAB>/evil.example came back as Location,
    which browsers resolve to evil.example."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(url(hub, "/login"), data={"name": "tech", "password": PASSWORD,
                                                       "next": nxt},
                             allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/", resp.headers
        async with http.post(url(hub, "/login"), data={"name": "tech", "password": PASSWORD,
                                                       "next": "/alarms?x=1"},
                             allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/alarms?x=1"
