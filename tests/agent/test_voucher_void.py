"""Voiding a voucher that was partly used (issue 23): the refund is its unused whole minutes
at the price it was sold for, rounded down to the centime; the void record and the day
close say so. Through the real agent API (aiohttp test server, fake clock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, start_agent

from agent.reports import day_close_for, day_period


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        yield a


async def use(agent: Agent, code: str, seconds: int) -> None:
    status, _ = await agent.st("s1", "POST", "/redeem", json={"code": code})
    assert status == 201
    agent.clock.advance(seconds)
    status, rec = await agent.st("s1", "POST", "/session/end")
    assert status == 200 and rec["billed_seconds"] == seconds and rec["fee"] == 0


async def use_up(agent: Agent, code: str) -> None:
    """Run the voucher until its session ends itself with the balance at 0."""
    status, s = await agent.st("s1", "POST", "/redeem", json={"code": code})
    assert status == 201
    agent.clock.advance(s["remaining_seconds"] + 5)
    status, view = await agent.st("s1", "GET", "/session")
    assert view["session"] is None
    _, info = await agent.op("GET", f"/vouchers/{code}")
    assert info["seconds_left"] == 0


async def test_a_partly_used_voucher_refunds_its_unused_minutes_rounded_down(
        agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    assert v["price"] == 800  # 4 blocks of 15 minutes at 2.00 MAD
    await use(agent, v["code"], 25 * 60 + 30)  # 34:30 left: 34 whole minutes
    status, rec = await agent.op("POST", f"/vouchers/{v['code']}/void",
                                 json={"reason": "station broke"})
    assert status == 200, rec
    assert rec["amount"] == 453  # 800 * 34 // 60 = 453.33, rounded down
    assert rec["minutes_voided"] == 34
    _, info = await agent.op("GET", f"/vouchers/{v['code']}")
    assert info["void"] is True and info["minutes_left"] == 34
    status, body = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    assert status == 409 and body["error"] == "voucher_void"

    report = day_close_for(agent.service, day_period(agent.clock.now().date(), agent.service.tz))
    assert report["vouchers"]["revenue"] == 800
    assert report["voids"]["count"] == 1
    assert report["voids"]["amount"] == 453
    assert report["voids"]["minutes"] == 34
    assert report["gross"] == 800 and report["net"] == 800 - 453


async def test_a_used_up_voucher_voids_for_nothing_and_an_unused_one_in_full(
        agent: Agent) -> None:
    _, used = await agent.op("POST", "/vouchers", json={"minutes": 15})
    _, fresh = await agent.op("POST", "/vouchers", json={"minutes": 30})
    await use_up(agent, used["code"])
    _, a = await agent.op("POST", f"/vouchers/{used['code']}/void", json={"reason": "x"})
    _, b = await agent.op("POST", f"/vouchers/{fresh['code']}/void", json={"reason": "typo"})
    assert (a["amount"], a["minutes_voided"]) == (0, 0)
    assert (b["amount"], b["minutes_voided"]) == (fresh["price"], 30) == (400, 30)
    report = day_close_for(agent.service, day_period(agent.clock.now().date(), agent.service.tz))
    assert report["voids"]["amount"] == 400
    assert report["net"] == 200 + 400 - 400


async def test_a_voucher_in_a_running_session_cannot_be_voided(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 30})
    assert (await agent.st("s1", "POST", "/redeem", json={"code": v["code"]}))[0] == 201
    seq = agent.service.ledger.next_seq
    status, body = await agent.op("POST", f"/vouchers/{v['code']}/void", json={"reason": "x"})
    assert status == 409 and body["error"] == "cannot_void"
    assert agent.service.ledger.next_seq == seq  # nothing recorded
