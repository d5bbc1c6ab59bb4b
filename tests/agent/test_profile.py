"""The anonymous visit profile (issue 18, CONTRACT §9b) through the real agent API: the
``[impact]`` lists checked naming the key, a profile at the counter's start, at the kiosk's
redeem and after it (once), carried on the closed record (left out when none), kept by a
resumed session, and every bad profile refused with a 400 naming the field, nothing written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, config_dict, start_agent

from agent.config import ConfigError, parse_agent_config
from agent.errors import DomainError
from agent.impact import DEFAULT_AGE_BANDS, DEFAULT_GENDERS, DEFAULT_PURPOSES
from agent.meter.session import EndReason
from agent.service import AgentService
from tests.agent.test_till import ledger_files, raw_records
from wire.messages import SessionRecord, record_from_dict


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client):
        yield a


def test_impact_lists_default_and_are_checked_naming_the_key(tmp_path: Path) -> None:
    cfg = parse_agent_config(config_dict(tmp_path))
    assert (cfg.impact.purposes, cfg.impact.age_bands, cfg.impact.genders) == (
        DEFAULT_PURPOSES, DEFAULT_AGE_BANDS, DEFAULT_GENDERS)
    assert cfg.impact.flush_minutes == 15
    cfg = parse_agent_config({**config_dict(tmp_path),
                              "impact": {"purposes": ["egov", "cnss"], "flush_minutes": 5}})
    assert cfg.impact.purposes == ("egov", "cnss") and cfg.impact.flush_minutes == 5
    for impact, key in [({"purposes": []}, "impact.purposes"),
                        ({"purposes": "egov"}, "impact.purposes"),
                        ({"genders": ["f", "f"]}, "impact.genders[1]"),
                        ({"age_bands": ["18 to 24"]}, "impact.age_bands[0]"),
                        ({"genders": ["f", 3]}, "impact.genders[1]"),
                        ({"flush_minutes": 0}, "impact.flush_minutes"),
                        ({"colours": ["red"]}, "impact.colours")]:
        with pytest.raises(ConfigError) as err:
            parse_agent_config({**config_dict(tmp_path), "impact": impact})
        assert key in str(err.value), (impact, err.value)


def closed_sessions(agent: Agent) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in raw_records(agent.service.config.data_dir)
            if r["type"] == "session"}


async def test_counter_start_carries_the_profile_to_the_closed_record(agent: Agent) -> None:
    profile = {"purpose": "egov", "age_band": "18-24", "gender": "f"}
    status, s = await agent.op("POST", "/sessions",
                               json={"station": "s1", "minutes": 30, "profile": profile})
    assert status == 201 and s["profile"] == profile
    status, s2 = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": None,
                                                            "profile": {"purpose": "job"}})
    assert status == 201
    agent.clock.advance(600)
    _, rec = await agent.op("POST", f"/sessions/{s['id']}/end")
    _, rec2 = await agent.op("POST", f"/sessions/{s2['id']}/end")
    assert rec["profile"] == profile and rec2["profile"] == {"purpose": "job"}
    stored = closed_sessions(agent)
    assert stored[s["id"]]["profile"] == profile
    wire = record_from_dict(stored[s["id"]])
    assert isinstance(wire, SessionRecord) and wire.profile.gender == "f"  # type: ignore[union-attr]
    # no profile given: the record leaves it out
    _, s3 = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 15})
    _, rec3 = await agent.op("POST", f"/sessions/{s3['id']}/end")
    assert "profile" not in rec3 and "profile" not in closed_sessions(agent)[s3["id"]]


async def test_kiosk_redeem_and_the_help_us_count_answer_once(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    status, s = await agent.st("s1", "POST", "/redeem",
                               json={"code": v["code"], "profile": {"gender": "m"}})
    assert status == 201 and s["profile"] == {"gender": "m"}
    status, err = await agent.st("s1", "POST", "/session/profile",
                                 json={"profile": {"purpose": "job"}})
    assert status == 409 and err["error"] == "profile_given"
    await agent.st("s1", "POST", "/session/end")
    # redeem without, then answer after it (what the kiosk does)
    _, v2 = await agent.op("POST", "/vouchers", json={"minutes": 60})
    _, s2 = await agent.st("s2", "POST", "/redeem", json={"code": v2["code"]})
    assert s2["profile"] is None
    answer = {"purpose": "school", "age_band": "<18"}
    status, view = await agent.st("s2", "POST", "/session/profile", json={"profile": answer})
    assert status == 200 and view["profile"] == answer
    before = ledger_files(agent.service.config.data_dir)
    status, err = await agent.st("s2", "POST", "/session/profile",
                                 json={"profile": {"gender": "f"}})
    assert status == 409 and err["error"] == "profile_given"
    assert ledger_files(agent.service.config.data_dir) == before
    _, rec = await agent.st("s2", "POST", "/session/end")
    assert rec["profile"] == answer
    assert closed_sessions(agent)[s2["id"]]["profile"] == answer
    # another station's token cannot answer for s1
    status, _ = await agent.req("POST", "/stations/s1/session/profile",
                                "station-two-token-0002", json={"profile": {"gender": "f"}})
    assert status in (401, 403)


BAD = [
    ({"gender": "woman"}, "profile.gender"),
    ({"age_band": "30"}, "profile.age_band"),
    ({"purpose": 3}, "profile.purpose"),
    ({"name": "Fatima"}, "profile.name"),
    ({"purpose": "egov", "cin": "AB123"}, "profile.cin"),
    ("egov", "profile"),
    ([], "profile"),
]


async def test_bad_profiles_are_a_400_naming_the_field_and_write_nothing(agent: Agent) -> None:
    data = agent.service.config.data_dir
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    for profile, field in BAD:
        before = ledger_files(data)
        status, err = await agent.op("POST", "/sessions", json={
            "station": "s1", "minutes": 30, "profile": profile})
        assert status == 400 and err["message"].startswith(field), (profile, err)
        status, err = await agent.st("s1", "POST", "/redeem",
                                     json={"code": v["code"], "profile": profile})
        assert status == 400 and err["message"].startswith(field), (profile, err)
        assert ledger_files(data) == before
        assert agent.service.sessions == {}
    # a profile on a voucher sale
    before = ledger_files(data)
    status, err = await agent.op("POST", "/vouchers",
                                 json={"minutes": 60, "profile": {"gender": "f"}})
    assert status == 400 and err["message"].startswith("profile")
    assert ledger_files(data) == before
    # after the redeem: bad answers, an empty one, no session
    status, err = await agent.st("s2", "POST", "/session/profile", json={"profile": {}})
    assert status == 404 and err["error"] == "no_session"
    _, s = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    before = ledger_files(data)
    for profile, field in [*BAD, ({}, "profile")]:
        status, err = await agent.st("s1", "POST", "/session/profile",
                                     json={"profile": profile})
        assert status == 400 and err["message"].startswith(field), (profile, err)
    status, err = await agent.st("s1", "POST", "/session/profile", json={})
    assert status == 400 and err["error"] == "missing_field"
    assert ledger_files(data) == before
    assert agent.service.sessions[s["id"]].profile is None


async def test_a_resumed_session_keeps_its_profile(agent: Agent) -> None:
    _, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    _, s = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    answer = {"purpose": "business", "age_band": "35-54", "gender": "x"}
    await agent.st("s1", "POST", "/session/profile", json={"profile": answer})
    agent.clock.advance(120)
    svc = agent.service
    svc.sessions.clear()  # the old process's memory is gone (kill -9)
    fresh = AgentService(svc.config, svc.ledger, svc.operators, agent.clock)
    assert fresh.recover() == []
    view = fresh.station_session("s1")["session"]
    assert view["resumed"] is True and view["profile"] == answer
    with pytest.raises(DomainError) as err:  # still answered once, after the restart
        fresh.set_profile("s1", {"gender": "f"})
    assert err.value.code == "profile_given"
    agent.clock.advance(60)
    rec = fresh.end(s["id"], EndReason.OPERATOR)
    assert rec["profile"] == answer and rec["billed_seconds"] == 60  # the outage is not billed
