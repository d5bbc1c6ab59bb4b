"""The agent HTTP API (CONTRACT §4) on a real aiohttp server, with a fake clock."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from agent_support import PASSWORD, TOKENS, Agent, start_agent

from agent.meter.tariff import compute_fee
from agent.service import AgentService


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        yield a


async def test_login_refuses_wrong_password_and_unknown_name(agent: Agent) -> None:
    for name, pw in (("amina", "wrong-password"), ("nobody", PASSWORD)):
        status, body = await agent.req("POST", "/login", json={"name": name, "password": pw})
        assert status == 401
        assert body["error"] == "bad_credentials"


async def test_operator_endpoints_need_an_operator_token(agent: Agent) -> None:
    for token in (None, "made-up", TOKENS["s1"]):
        status, body = await agent.req("GET", "/stations", token)
        assert status == 401, token
        assert body["error"] == "unauthorized"
        status, _ = await agent.req("POST", "/vouchers", token, json={"minutes": 30})
        assert status == 401
    assert agent.service.ledger.next_seq == 1  # nothing was sold


async def test_operator_session_lifecycle_bills_per_tariff(agent: Agent) -> None:
    status, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30})
    assert status == 201
    assert s["station"] == "s1" and s["minutes"] == 30 and s["remaining_seconds"] == 1800
    agent.clock.advance(20 * 60)
    status, view = await agent.st("s1", "GET", "/session")
    assert status == 200
    assert view["session"]["remaining_seconds"] == 600
    assert view["session"]["fee_so_far"] == 400
    status, s2 = await agent.op("POST", f"/sessions/{s['id']}/extend", json={"minutes": 15})
    assert status == 200 and s2["remaining_seconds"] == 600 + 900
    agent.clock.advance(5 * 60 + 7)
    status, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert status == 200
    assert rec["id"] == s["id"]
    assert rec["billed_seconds"] == 25 * 60 + 7
    assert rec["fee"] == compute_fee(agent.service.tariff, datetime.fromisoformat(
        rec["started_at"]), 25 * 60 + 7, agent.service.tz) == 400
    assert rec["currency"] == "MAD"
    assert set(rec) >= {"id", "station", "started_at", "ended_at", "billed_seconds", "fee",
                        "currency"}
    outbox = agent.service.ledger.outbox()
    assert [r["id"] for r in outbox] == [s["id"]] and outbox[0]["seq"] == 1
    status, view = await agent.st("s1", "GET", "/session")
    assert view["session"] is None and view["locked"] is False


async def test_open_ended_session_and_concession(agent: Agent) -> None:
    status, s = await agent.op("POST", "/sessions",
                               json={"station": "s2", "minutes": None, "category": "student"})
    assert status == 201 and s["open_ended"] and s["remaining_seconds"] is None
    agent.clock.advance(3 * 3600)
    status, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    assert rec["billed_seconds"] == 3 * 3600
    assert rec["fee"] == 12 * 200 * 50 // 100


async def test_fixed_session_ends_itself_when_time_is_up(agent: Agent) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 15})
    agent.clock.advance(15 * 60 + 30)
    _, stations = await agent.op("GET", "/stations")
    assert stations[0]["session"] is None
    (rec,) = agent.service.ledger.outbox()
    assert rec["id"] == s["id"]
    assert rec["end_reason"] == "time_exhausted" and rec["billed_seconds"] == 900


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"station": "s9", "minutes": 10}, 404, "unknown_station"),
        ({"station": "s1", "minutes": "10"}, 400, "bad_field"),
        ({"station": "s1", "minutes": True}, 400, "bad_field"),
        ({"station": "s1", "minutes": 0}, 400, "bad_field"),
        ({"station": "s1"}, 400, "missing_field"),
        ({"minutes": 10}, 400, "missing_field"),
        ({"station": 1, "minutes": 10}, 400, "bad_field"),
        ({"station": "s1", "minutes": 10, "category": "vip"}, 400, "unknown_category"),
    ],
)
async def test_bad_session_requests_are_refused_and_change_nothing(
        agent: Agent, body: dict[str, Any], status: int, error: str) -> None:
    got, answer = await agent.op("POST", "/sessions", json=body)
    assert (got, answer["error"]) == (status, error)
    assert answer["message"]
    assert agent.service.sessions == {}
    assert agent.service.ledger.active_checkpoints() == []


async def test_a_body_that_is_not_sent_as_json_is_refused(agent: Agent) -> None:
    """Issue 16: a cross-origin text/plain POST (no CORS preflight) could log in or fail
    logins for anyone; the API reads only application/json bodies."""
    good = b'{"station": "s1", "minutes": 30}'
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                  None):
        headers = {"Content-Type": ctype} if ctype else {}
        status, body = await agent.op("POST", "/sessions", data=good, headers=headers)
        assert status == 415 and body["error"] == "unsupported_media", ctype
    assert agent.service.sessions == {}
    status, body = await agent.req("POST", "/login", data=b'{"name": "amina", "password": '
                                   b'"x"}', headers={"Content-Type": "text/plain"})
    assert status == 415


async def test_lone_surrogates_are_refused_and_change_nothing(agent: Agent) -> None:
    """Issue 16: {"text": "\udfff"} was applied in memory, then the audit line could not
    be written: /console/ answered 500 until the agent restarted."""
    status, body = await agent.op("POST", "/stations/s1/message",
                                  data=b'{"text": "\\udfff", "seconds": 60}',
                                  headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"] == "bad_text", body
    status, body = await agent.req("POST", "/login", data=b'{"name": "\\ud800", '
                                   b'"password": "x"}',
                                   headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"] == "bad_text", body
    status, view = await agent.st("s1", "GET", "/session")
    assert status == 200 and not view.get("message"), view
    resp = await agent.client.get("/console/login")
    assert resp.status == 200


async def test_malformed_and_oversized_bodies_are_json_4xx(agent: Agent) -> None:
    json_type = {"Content-Type": "application/json"}
    for data in (b"not json", b"[1, 2]", b"\xff\xfe", b"", b"[" * 2000 + b"]" * 2000,
                 b'{"a":' * 40 + b"1" + b"}" * 40):
        status, body = await agent.op("POST", "/sessions", data=data, headers=json_type)
        assert status == 400 and body["error"] == "bad_json", data
    status, body = await agent.op("POST", "/sessions", data=b"{" + b" " * 70_000 + b"}",
                                  headers=json_type)
    assert status == 413 and body["error"] == "body_too_large"
    status, body = await agent.op("POST", "/sessions/nope/end")
    assert status == 404 and body["error"] == "unknown_session"
    status, body = await agent.op("GET", "/no/such/thing")
    assert status == 404 and body["error"] == "not_found"


async def test_one_session_per_station(agent: Agent) -> None:
    await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 10})
    status, body = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 10})
    assert status == 409 and body["error"] == "station_busy"


async def test_voucher_sale_redeem_and_balance(agent: Agent) -> None:
    status, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    assert status == 201
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}", v["code"])
    assert v["price"] == 4 * 200 and v["minutes"] == 60
    typed = v["code"].lower().replace("-", " ")
    status, s = await agent.st("s1", "POST", "/redeem", json={"code": typed})
    assert status == 201 and s["remaining_seconds"] == 3600 and s["paid_by"] == "voucher"
    # the same voucher cannot run on two stations at once
    status, body = await agent.st("s2", "POST", "/redeem", json={"code": v["code"]})
    assert status == 409 and body["error"] == "voucher_in_use"
    agent.clock.advance(20 * 60)
    status, rec = await agent.st("s1", "POST", "/session/end")
    assert status == 200 and rec["fee"] == 0 and rec["billed_seconds"] == 1200
    assert rec["voucher_minutes_left"] == 40
    # the balance carries over to the next session, which ends when it runs out
    status, s = await agent.st("s2", "POST", "/redeem", json={"code": v["code"]})
    assert status == 201 and s["remaining_seconds"] == 2400
    agent.clock.advance(41 * 60)
    status, view = await agent.st("s2", "GET", "/session")
    assert view["session"] is None and view["locked"] is False
    status, body = await agent.st("s2", "POST", "/redeem", json={"code": v["code"]})
    assert status == 409 and body["error"] == "voucher_empty"
    types = [r["type"] for r in agent.service.ledger.outbox()]
    assert types == ["voucher_sale", "session", "session"]
    _, info = await agent.op("GET", f"/vouchers/{v['code']}")
    assert info["minutes_left"] == 0


async def test_voucher_expires(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 30})
    agent.clock.advance(31 * 24 * 3600)
    status, body = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    assert status == 409 and body["error"] == "voucher_expired"


async def test_failed_redemptions_are_rate_limited_per_station(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 30})
    wrong = ["00000-00000", "ZZZZZ-ZZZZZ", "not a code", "11111-11111", "22222-22222"]
    for code in wrong:
        status, body = await agent.st("s1", "POST", "/redeem", json={"code": code})
        assert status in (400, 404), body
    resp = await agent.client.post("/api/v1/stations/s1/redeem", json={"code": v["code"]},
                                   headers={"Authorization": f"Bearer {TOKENS['s1']}"})
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert (await resp.json())["error"] == "too_many_attempts"
    # another station is not affected; this one is free again after the window
    status, _ = await agent.st("s2", "POST", "/redeem", json={"code": "33333-33333"})
    assert status == 404
    agent.clock.advance(61)
    status, s = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    assert status == 201


async def test_station_token_acts_on_its_own_station_only(agent: Agent) -> None:
    await agent.op("POST", "/sessions", json={"station": "s2", "minutes": 30})
    status, body = await agent.req("POST", "/stations/s2/session/end", TOKENS["s1"])
    assert status == 403 and body["error"] == "forbidden"
    status, body = await agent.req("GET", "/stations/s2/session", agent.token)
    assert status == 401
    assert len(agent.service.sessions) == 1


async def test_station_goes_online_when_its_kiosk_polls(agent: Agent) -> None:
    _, before = await agent.op("GET", "/stations")
    assert [s["online"] for s in before] == [False, False]
    await agent.st("s2", "GET", "/session")
    _, after = await agent.op("GET", "/stations")
    assert [s["online"] for s in after] == [False, True]
    agent.clock.advance(31)
    _, later = await agent.op("GET", "/stations")
    assert [s["online"] for s in later] == [False, False]


async def test_idle_end_from_station_is_recorded(agent: Agent) -> None:
    await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    agent.clock.advance(600)
    status, rec = await agent.st("s1", "POST", "/session/end", json={"reason": "idle"})
    assert status == 200 and rec["end_reason"] == "idle"
    status, body = await agent.st("s1", "POST", "/session/end", json={"reason": "operator"})
    assert status == 400


async def test_void_unused_voucher_reverses_its_sale(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 30, "category": "student"})
    assert v["price"] == 2 * 200 * 50 // 100  # 2 blocks, 50 % off
    status, rec = await agent.op("POST", f"/vouchers/{v['code']}/void", json={"reason": "typo"})
    assert status == 200 and rec["type"] == "void" and rec["amount"] == v["price"]
    assert rec["operator"] == "amina" and rec["reason"] == "typo"
    status, body = await agent.op("POST", f"/vouchers/{v['code']}/void", json={"reason": "x"})
    assert status == 409
    status, body = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    assert status == 409 and body["error"] == "voucher_void"
    status, body = await agent.op("POST", f"/vouchers/{v['code']}/void", json={})
    assert status == 400


async def test_quote_endpoint_matches_fee_core(agent: Agent) -> None:
    status, q = await agent.op("GET", "/quote?minutes=31&category=student")
    assert status == 200
    assert q == {"minutes": 31, "fee": compute_fee(agent.service.tariff, agent.clock.now(),
                                                   31 * 60, agent.service.tz, "student"),
                 "currency": "MAD"}
    status, _ = await agent.op("GET", "/quote?minutes=abc")
    assert status == 400


async def test_recovery_past_the_limit_closes_sessions_at_their_checkpoint(
        agent: Agent, tmp_path: Path) -> None:
    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    agent.clock.advance(16)
    agent.service.tick()  # a checkpoint is due (every 15 s)
    agent.clock.advance(10)  # lost: the agent "dies" before the next checkpoint
    agent.clock.advance(31 * 60)  # and stays down past resume_within_minutes (30)
    svc = agent.service
    svc.sessions.clear()  # the old process is gone with its memory
    fresh = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    (rec,) = fresh.recover()
    assert rec["id"] == s["id"]
    assert rec["end_reason"] == "restart_recovery"
    assert rec["billed_seconds"] == 16
    assert svc.ledger.active_checkpoints() == []


async def test_a_write_that_fails_after_it_landed_leaves_memory_agreeing_with_the_ledger(
        agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.storage as storage

    _, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None})
    agent.clock.advance(300)
    agent.service.tick()  # take the due checkpoint now, so the next write is the close
    real = storage.fsync_dir
    calls = {"n": 0}

    def failing_fsync_dir(path: Path) -> None:
        calls["n"] += 1
        raise OSError(5, "Input/output error")

    # the rename has happened when the directory fsync fails: the close is in the ledger
    monkeypatch.setattr(storage, "fsync_dir", failing_fsync_dir)
    status, body = await agent.op("POST", f"/sessions/{s['id']}/end")
    monkeypatch.setattr(storage, "fsync_dir", real)
    assert calls["n"] == 1
    assert status == 503 and body["error"] == "storage_error"
    assert [r["id"] for r in agent.service.ledger.outbox()] == [s["id"]]
    assert agent.service.sessions == {}  # the station is free again, not stuck
    status, s2 = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 10})
    assert status == 201
    agent.clock.advance(20)
    agent.service.tick()  # checkpoints keep working
    assert agent.service.ledger.active_checkpoints()[0]["billed_seconds"] == 20


async def test_a_write_that_fails_before_it_landed_changes_nothing(
        agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.storage as storage

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    status, body = await agent.op("POST", "/vouchers", json={"minutes": 30})
    status2, _ = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 10})
    monkeypatch.undo()
    assert status == status2 == 503 and "No space left" in body["message"]
    assert agent.service.ledger.next_seq == 1
    assert agent.service.ledger.vouchers() == []
    assert agent.service.sessions == {} and agent.service.ledger.active_checkpoints() == []
