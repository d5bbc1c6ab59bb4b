"""Station lock/unlock/message, the tariff edited at run time, the audit trail and hub commands."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_support import TOKENS, Agent, config_dict, start_agent

from agent.commands import CommandRunner
from agent.meter.session import EndReason
from agent.meter.tariff import compute_fee
from agent.service import AgentService
from wire.messages import Command

NEW_TARIFF = {"currency": "MAD", "block_minutes": 30, "block_price": 500, "minimum_blocks": 1,
              "grace_seconds": 0, "concessions": {"student": 20}}


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="manager"):
        yield a


async def test_lock_ends_the_running_session_and_refuses_new_ones(agent: Agent) -> None:
    status, _ = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    assert status == 201
    agent.clock.advance(10 * 60)
    status, view = await agent.op("POST", "/stations/s1/lock", json={"reason": "cable cut"})
    assert status == 200
    assert view["locked"] is True and view["session"] is None
    assert view["lock"]["reason"] == "cable cut" and view["lock"]["by"] == "operator:amina"
    closed = [r for r in agent.service.ledger.records() if r["type"] == "session"]
    assert len(closed) == 1 and closed[0]["billed_seconds"] == 600
    assert closed[0]["end_reason"] == EndReason.OPERATOR
    # no operator session, no voucher redemption while locked
    status, body = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    assert (status, body["error"]) == (409, "station_locked")
    _, sale = await agent.op("POST", "/vouchers", json={"minutes": 30})
    status, body = await agent.st("s1", "POST", "/redeem", json={"code": sale["code"]})
    assert (status, body["error"]) == (409, "station_locked")
    # the kiosk sees the lock in its poll
    _, seen = await agent.st("s1", "GET", "/session")
    assert seen["locked"] is True and seen["lock"]["reason"] == "cable cut"
    # other stations are unaffected
    status, _ = await agent.st("s2", "POST", "/redeem", json={"code": sale["code"]})
    assert status == 201
    status, view = await agent.op("POST", "/stations/s1/unlock")
    assert status == 200 and view["locked"] is False
    status, _ = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 15})
    assert status == 201


async def test_a_lock_survives_an_agent_restart(agent: Agent) -> None:
    await agent.op("POST", "/stations/s2/lock", json={"reason": "maintenance"})
    svc = agent.service
    revived = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    assert revived.station_state("s2")["locked"] is True
    assert revived.station_state("s2")["lock"]["reason"] == "maintenance"
    assert revived.station_state("s1")["locked"] is False


async def test_messages_reach_the_kiosk_and_expire(agent: Agent) -> None:
    status, views = await agent.op("POST", "/stations/*/message",
                                   json={"text": "  Closing at 18:00  ", "seconds": 60})
    assert status == 200 and [v["id"] for v in views] == ["s1", "s2"]
    for sid in TOKENS:
        _, seen = await agent.st(sid, "GET", "/session")
        assert seen["message"]["text"] == "Closing at 18:00"
    agent.clock.advance(61)
    _, seen = await agent.st("s1", "GET", "/session")
    assert seen["message"] is None
    await agent.op("POST", "/stations/s1/message", json={"text": "Please wait"})
    await agent.op("POST", "/stations/s1/message", json={"text": ""})  # clears
    _, seen = await agent.st("s1", "GET", "/session")
    assert seen["message"] is None
    for bad in ({"text": "x" * 501}, {"text": "hi", "seconds": 0}, {"text": 5}, {}):
        status, body = await agent.op("POST", "/stations/s1/message", json=bad)
        assert status == 400, bad
    status, body = await agent.op("POST", "/stations/s9/message", json={"text": "hi"})
    assert (status, body["error"]) == (404, "unknown_station")


async def test_a_new_tariff_applies_to_new_sessions_only(agent: Agent) -> None:
    _, old = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    status, view = await agent.op("PUT", "/tariff", json=NEW_TARIFF)
    assert status == 200 and view["version"] == 1 and view["tariff"]["block_price"] == 500
    _, new = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": None})
    agent.clock.advance(40 * 60)
    _, a = await agent.op("POST", f"/sessions/{old['id']}/end")
    _, b = await agent.op("POST", f"/sessions/{new['id']}/end")
    cfg = agent.service.config
    started = datetime.fromisoformat(a["started_at"])
    assert a["fee"] == compute_fee(cfg.tariff, started, 2400, cfg.tz, None) == 600
    assert b["fee"] == 1000  # two 30-minute blocks at 500
    _, quote = await agent.op("GET", "/quote?minutes=30")
    assert quote["fee"] == 500


async def test_a_session_keeps_its_tariff_through_restart_recovery(agent: Agent) -> None:
    _, old = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    await agent.op("PUT", "/tariff", json=NEW_TARIFF)
    agent.clock.advance(20 * 60)
    agent.service.checkpoint()
    svc = agent.service
    svc.sessions.clear()  # as if this process had died
    revived = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    assert revived.tariff.block_price == 500  # the edited tariff is still in force
    assert revived.recover() == []  # resumed, with the tariff it started under
    closed = revived.end(old["id"], EndReason.OPERATOR)
    assert closed["fee"] == 400  # the config tariff it started under: two 15-min blocks at 200


async def test_tariff_edits_need_a_manager_and_a_valid_tariff(
        tmp_path: Path, aiohttp_client: Any, agent: Agent) -> None:
    bad = {**NEW_TARIFF, "block_minutes": 0}
    status, body = await agent.op("PUT", "/tariff", json=bad)
    assert status == 400 and body["error"] == "bad_tariff" and "block_minutes" in body["message"]
    status, body = await agent.op("PUT", "/tariff", json={**NEW_TARIFF, "colour": "red"})
    assert status == 400 and "colour" in body["message"]
    _, view = await agent.op("GET", "/tariff")
    assert view["version"] == 0 and view["source"] == "config"
    assert not (agent.service.state_dir / "tariff.json").exists()
    async for clerk in start_agent(tmp_path / "other", aiohttp_client, role="operator"):
        status, body = await clerk.op("PUT", "/tariff", json=NEW_TARIFF)
        assert (status, body["error"]) == (403, "forbidden")
        status, _ = await clerk.op("GET", "/audit")
        assert status == 403
    status, body = await agent.req("PUT", "/tariff", TOKENS["s1"], json=NEW_TARIFF)
    assert status == 401


async def test_an_edited_config_tariff_wins_over_an_older_run_time_edit(agent: Agent,
                                                                        tmp_path: Path) -> None:
    from agent.config import parse_agent_config
    await agent.op("PUT", "/tariff", json=NEW_TARIFF)
    svc = agent.service
    assert AgentService(svc.config, svc.ledger, svc.operators, agent.clock).tariff.block_price \
        == 500
    raw = config_dict(tmp_path / "data")
    raw["tariff"]["block_price"] = 250  # the installer changed the file since
    edited = parse_agent_config(raw)
    revived = AgentService(edited, svc.ledger, svc.operators, agent.clock)
    assert revived.tariff.block_price == 250 and revived.tariff_view()["source"] == "config"


async def test_every_operator_action_is_in_the_audit_trail(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    await agent.op("POST", f"/sessions/{s['id']}/extend", json={"minutes": 15})
    await agent.op("POST", f"/sessions/{s['id']}/end")
    _, sale = await agent.op("POST", "/vouchers", json={"minutes": 60})
    await agent.op("POST", f"/vouchers/{sale['code']}/void", json={"reason": "misprint"})
    await agent.op("POST", "/stations/s2/lock")
    await agent.op("POST", "/stations/s2/unlock")
    await agent.op("PUT", "/tariff", json=NEW_TARIFF)
    await agent.req("POST", "/login", json={"name": "amina", "password": "wrong"})
    status, entries = await agent.op("GET", "/audit")
    assert status == 200
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["login", "session.start", "session.extend", "session.end",
                       "voucher.sell", "voucher.void", "station.lock", "station.unlock",
                       "tariff.set", "login.failed"]
    assert {e["actor"] for e in entries} == {"operator:amina"}
    assert all(e["at"] for e in entries)
    void = next(e for e in entries if e["action"] == "voucher.void")
    assert void["target"] == sale["sale_id"] and void["details"]["reason"] == "misprint"


async def test_hub_commands_run_once_per_id(agent: Agent) -> None:
    svc = agent.service
    with ThreadPoolExecutor(max_workers=1) as executor:
        restarts: list[bool] = []
        runner = CommandRunner(svc, executor, lambda: restarts.append(True))
        answers = [await runner.run(c) for c in (
            Command(id="a", name="message", station="s1", args={"text": "Bonjour", "seconds": 5}),
            Command(id="b", name="set_tariff", args={"tariff": NEW_TARIFF}),
            Command(id="c", name="set_tariff", args={"tariff": {"currency": "??"}}),
            Command(id="d", name="restart"),
            Command(id="d", name="restart"),
            Command(id="e", name="unlock", station="s1"),
            Command(id="f", name="message", args={"text": 3}),
        )]
        assert [(a.id, a.status) for a in answers] == [
            ("a", "done"), ("b", "done"), ("c", "failed"), ("d", "done"), ("d", "done"),
            ("e", "done"), ("f", "failed")]
        assert "tariff.block_minutes" in answers[2].message
        assert restarts == [True]  # the repeated restart was not executed again
        assert svc.station_state("s1")["message"]["text"] == "Bonjour"
        assert svc.tariff.block_price == 500 and svc.tariff_info["set_by"] == "hub"
        # answers are remembered on disk: a new runner (after a restart) answers, not executes
        again = CommandRunner(svc, executor, lambda: restarts.append(True))
        assert (await again.run(Command(id="d", name="restart"))).status == "done"
        assert restarts == [True]
        await asyncio.sleep(0)
    assert any(e["actor"] == "hub" and e["action"] == "agent.restart"
               for e in svc.audit_entries())


async def test_a_command_received_after_it_expired_is_answered_and_not_run(
        agent: Agent) -> None:
    svc = agent.service
    now = agent.clock.now()
    with ThreadPoolExecutor(max_workers=1) as executor:
        runner = CommandRunner(svc, executor)
        stale = Command(id="old", name="lock", station="s1",
                        expires_at=(now - timedelta(days=3)).isoformat())
        garbled = Command(id="bad", name="lock", station="s1", expires_at="next tuesday")
        fresh = Command(id="new", name="message", station="s1", args={"text": "Salam"},
                        expires_at=(now + timedelta(minutes=5)).isoformat())
        answers = [await runner.run(c) for c in (stale, garbled, fresh, stale)]
        assert [(a.id, a.status) for a in answers] == [
            ("old", "expired"), ("bad", "expired"), ("new", "done"), ("old", "expired")]
        assert "not run" in answers[0].message
        assert "s1" not in svc.locks  # the stale lock did not run
        assert svc.station_state("s1")["message"]["text"] == "Salam"
        # remembered by id: once the clock is back in its window, it is still not run
        agent.clock.jump_wall(-4 * 24 * 3600)
        again = CommandRunner(svc, executor)
        assert (await again.run(stale)).status == "expired"
        assert "s1" not in svc.locks
        await asyncio.sleep(0)
