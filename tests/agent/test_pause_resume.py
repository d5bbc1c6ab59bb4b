"""Pause, resume and move (CONTRACT §7) through the agent's HTTP API, with a fake clock:
time stands still while paused, a voucher keeps its balance, blocks are priced on billed
time (§3), bad requests are 4xx JSON errors that change nothing, and a paused session comes
back paused after a restart."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agent_support import TOKENS, Agent, config_dict, start_agent

from agent.clock import FakeClock
from agent.ledger import LEDGER_FILE
from agent.meter.session import EndReason
from agent.meter.tariff import compute_fee
from agent.service import AgentService
from wire.messages import record_from_dict


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        yield a


def ledger_bytes(agent: Agent) -> bytes:
    return (agent.service.state_dir / LEDGER_FILE).read_bytes()


def restarted(agent: Agent) -> AgentService:
    """A new agent process on the same ledger (the old one's memory is gone)."""
    svc = agent.service
    svc.sessions.clear()
    fresh = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    assert fresh.recover() == []
    return fresh


async def test_a_paused_session_stands_still_and_runs_on_when_resumed(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    assert s["state"] == "running"
    agent.clock.advance(300)
    status, p = await agent.op("POST", f"/sessions/{s['id']}/pause",
                               json={"reason": "power cut"})
    assert status == 200, p
    assert (p["state"], p["billed_seconds"], p["remaining_seconds"], p["pause_reason"]) == (
        "paused", 300, 1500, "power cut")
    agent.clock.advance(3600)  # an hour paused: nothing counts, nothing runs out
    assert agent.service.tick() == []
    _, kiosk = await agent.st("s1", "GET", "/session")
    assert kiosk["session"]["state"] == "paused"
    assert kiosk["session"]["billed_seconds"] == 300
    status, r = await agent.op("POST", f"/sessions/{s['id']}/resume")
    assert status == 200 and r["state"] == "running" and r["remaining_seconds"] == 1500
    agent.clock.advance(100)
    _, end = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert end["billed_seconds"] == 400
    assert end["fee"] == 200  # one 15-minute block on billed time, the pause is free


async def test_a_voucher_keeps_its_balance_while_paused(agent: Agent) -> None:
    _, sale = await agent.op("POST", "/vouchers", json={"minutes": 30})
    _, s = await agent.st("s2", "POST", "/redeem", json={"code": sale["code"]})
    agent.clock.advance(300)
    await agent.op("POST", f"/sessions/{s['id']}/pause")
    agent.clock.advance(2 * 3600)
    _, kiosk = await agent.st("s2", "GET", "/session")
    assert kiosk["session"]["voucher_minutes_left"] == 25
    await agent.op("POST", f"/sessions/{s['id']}/resume")
    agent.clock.advance(60)
    _, end = await agent.st("s2", "POST", "/session/end")
    assert end["billed_seconds"] == 360 and end["voucher_minutes_left"] == 24
    _, info = await agent.op("GET", f"/vouchers/{sale['code']}")
    assert info["seconds_left"] == 30 * 60 - 360


async def test_blocks_start_when_billed_time_reaches_them(tmp_path: Path,
                                                          aiohttp_client: Any) -> None:
    # 06:40 UTC is 07:40 in Casablanca (UTC+01 in June): the night band (100) ends at 08:00
    clock = FakeClock(datetime(2026, 6, 10, 6, 40, tzinfo=UTC))
    async for agent in start_agent(tmp_path / "data", aiohttp_client, clock=clock):
        _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
        clock.advance(300)
        await agent.op("POST", f"/sessions/{s['id']}/pause")
        clock.advance(1800)  # resumed at 08:15 local
        await agent.op("POST", f"/sessions/{s['id']}/resume")
        clock.advance(900)
        _, end = await agent.op("POST", f"/sessions/{s['id']}/end")
        assert end["billed_seconds"] == 1200
        # block 0 starts 07:40 (night, 100); block 1 when billed time reached 15 min:
        # 08:15 + 10 min = 08:25 (day, 200); read off wall time it would be 07:55 (night)
        assert end["fee"] == 300
        cfg = agent.service.config
        assert compute_fee(cfg.tariff, datetime.fromisoformat(end["started_at"]), 1200,
                           cfg.tz) == 200
        assert end["ended_at"] == "2026-06-10T07:30:00+00:00"  # billing stopped then


async def test_move_keeps_the_session_and_tells_the_old_kiosk(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    agent.clock.advance(120)
    status, m = await agent.op("POST", f"/sessions/{s['id']}/move", json={"station": "s2"})
    assert status == 200, m
    assert (m["id"], m["station"], m["billed_seconds"]) == (s["id"], "s2", 120)
    _, old = await agent.st("s1", "GET", "/session")
    assert old["session"] is None and old["moved"] == {"session": s["id"], "to": "s2"}
    _, new = await agent.st("s2", "GET", "/session")
    assert new["session"]["id"] == s["id"]
    fresh = restarted(agent)  # the move is durable
    assert fresh.station_session("s2")["session"]["id"] == s["id"]


async def test_bad_pause_resume_and_move_requests_change_nothing(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    _, other = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": None})
    await agent.op("POST", f"/sessions/{other['id']}/end")
    sid, ended = s["id"], other["id"]
    await agent.op("POST", "/stations/s2/lock", json={"reason": "broken screen"})
    before = ledger_bytes(agent)
    cases: list[tuple[str, str, Any, str | None, int, str]] = [
        ("POST", "/sessions/nope/pause", {}, None, 404, "unknown_session"),
        ("POST", f"/sessions/{ended}/pause", {}, None, 404, "unknown_session"),
        ("POST", f"/sessions/{ended}/resume", {}, None, 404, "unknown_session"),
        ("POST", f"/sessions/{ended}/move", {"station": "s1"}, None, 404, "unknown_session"),
        ("POST", f"/sessions/{sid}/resume", {}, None, 409, "session_running"),
        ("POST", f"/sessions/{sid}/move", {"station": "s2"}, None, 409, "station_locked"),
        ("POST", f"/sessions/{sid}/move", {"station": "s1"}, None, 409, "station_busy"),
        ("POST", f"/sessions/{sid}/move", {"station": "s9"}, None, 404, "unknown_station"),
        ("POST", f"/sessions/{sid}/move", {}, None, 400, "missing_field"),
        ("POST", f"/sessions/{sid}/move", {"station": 2}, None, 400, "bad_field"),
        ("POST", f"/sessions/{sid}/pause", {"reason": ["x"]}, None, 400, "bad_field"),
        ("POST", f"/sessions/{sid}/pause", "not json", None, 400, "bad_json"),
        # a kiosk may not pause, resume or move: not its own session, nor another's
        ("POST", f"/sessions/{sid}/pause", {}, TOKENS["s1"], 401, "unauthorized"),
        ("POST", f"/sessions/{sid}/move", {"station": "s2"}, TOKENS["s2"], 401,
         "unauthorized"),
        ("POST", "/stations/pause-all", {}, TOKENS["s1"], 401, "unauthorized"),
    ]
    for method, path, body, token, want, code in cases:
        kw: dict[str, Any] = ({"data": body, "headers": {"Content-Type": "application/json"}}
                              if isinstance(body, str) else {"json": body})
        status, answer = await agent.req(method, path, token or agent.token, **kw)
        assert (status, answer["error"]) == (want, code), (path, body, answer)
        assert answer["message"]
        assert ledger_bytes(agent) == before, (path, body)
    # a paused session: pausing again, and the citizen ending it, are refused too
    await agent.op("POST", f"/sessions/{sid}/pause")
    before = ledger_bytes(agent)
    status, answer = await agent.op("POST", f"/sessions/{sid}/pause")
    assert (status, answer["error"]) == (409, "session_paused")
    status, answer = await agent.st("s1", "POST", "/session/end")
    assert (status, answer["error"]) == (409, "session_paused")
    assert ledger_bytes(agent) == before
    assert agent.service.sessions[sid].paused


async def test_pause_all_and_resume_all(agent: Agent) -> None:
    _, a = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    _, b = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": None})
    await agent.op("POST", f"/sessions/{b['id']}/pause")
    status, body = await agent.op("POST", "/stations/pause-all", json={"reason": "UPS"})
    assert status == 200 and body == {"sessions": [a["id"]]}  # b was paused already
    agent.clock.advance(600)
    status, body = await agent.op("POST", "/stations/resume-all")
    assert status == 200 and sorted(body["sessions"]) == sorted([a["id"], b["id"]])
    _, stations = await agent.op("GET", "/stations")
    assert all(st["session"]["state"] == "running" and st["session"]["billed_seconds"] == 0
               for st in stations)
    status, body = await agent.op("POST", "/stations/resume-all")
    assert body == {"sessions": []}
    actions = [e["action"] for e in agent.service.audit_entries()]
    assert "session.pause_all" in actions and "session.resume_all" in actions


async def test_a_paused_session_comes_back_paused_after_a_restart(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    agent.clock.advance(200)
    await agent.op("POST", f"/sessions/{s['id']}/pause", json={"reason": "lunch"})
    agent.clock.advance(20)
    fresh = restarted(agent)
    view = fresh.station_session("s1")["session"]
    assert (view["state"], view["billed_seconds"], view["pause_reason"]) == (
        "paused", 200, "lunch")
    assert view["resumed"] is True
    agent.clock.advance(900)
    assert fresh.station_session("s1")["session"]["billed_seconds"] == 200
    fresh.resume(s["id"], "operator:amina")
    agent.clock.advance(50)
    assert fresh.end(s["id"], EndReason.OPERATOR)["billed_seconds"] == 250


async def test_resume_within_minutes_zero_closes_at_the_checkpoint(
        tmp_path: Path, aiohttp_client: Any) -> None:
    cfg = {**config_dict(tmp_path / "data"), "resume_within_minutes": 0}
    async for agent in start_agent(tmp_path / "data", aiohttp_client, config=cfg):
        _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
        agent.clock.advance(20)
        agent.service.checkpoint()
        agent.clock.advance(1)
        svc = agent.service
        svc.sessions.clear()
        [rec] = AgentService(svc.config, svc.ledger, svc.operators, agent.clock).recover()
        assert (rec["id"], rec["end_reason"], rec["billed_seconds"]) == (
            s["id"], "restart_recovery", 20)


@pytest.mark.parametrize("damage", [
    {"billed_seconds": "lots"},
    {"started_at": "yesterday"},
    {"started_at": None, "billed_seconds": -5},
    {"limit_seconds": True},
    {"station": 7, "segments": "x"},
    {"segments": [["not a time", 3]]},
    {"category": "pensioner"},  # not in the session's tariff
    {"category": ["student"]},
    "a string, not an object",
])
async def test_a_damaged_checkpoint_is_closed_with_what_it_says(
        agent: Agent, damage: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    _, keep = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": None})
    agent.clock.advance(120)
    agent.service.checkpoint()
    path = agent.service.state_dir / LEDGER_FILE
    db = json.loads(path.read_bytes())
    active = db["state"]["1"]["active"]
    active[s["id"]] = damage if isinstance(damage, str) else {**active[s["id"]], **damage}
    agent.service.ledger.storage.write(db)
    svc = agent.service
    svc.sessions.clear()
    fresh = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    with caplog.at_level(logging.WARNING):
        closed = fresh.recover()
    assert [r["id"] for r in closed] == [s["id"]]
    rec = closed[0]
    assert rec["end_reason"] == "restart_recovery" and rec["seq"] >= 1
    assert rec["billed_seconds"] in (0, 120)
    record_from_dict(rec)  # a record the hub accepts: it can leave the outbox
    unreadable = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(unreadable) == 1, [r.getMessage() for r in caplog.records]
    # the intact session next to it is resumed
    assert list(fresh.sessions) == [keep["id"]]
