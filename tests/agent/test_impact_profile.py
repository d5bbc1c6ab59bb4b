"""The anonymous visit profile (CONTRACT §9b, issue 18) through the real agent API: given at
the counter's session start, at the kiosk's redeem or once afterwards ("help us count"),
carried to the closed session record (and through a checkpoint, so a resumed session keeps
it); every bad profile is a 400 naming the part, with the ledger files unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, config_dict, start_agent

from agent.config import ConfigError, parse_agent_config
from agent.meter.session import Session
from tests.agent.test_till import ledger_files, raw_records
from wire.messages import record_from_dict


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[Agent]:
    async for a in start_agent(tmp_path / "data", aiohttp_client, role="manager"):
        yield a


def closed_sessions(data_dir: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in raw_records(data_dir) if r["type"] == "session"}


async def test_a_profile_given_at_the_counter_reaches_the_closed_record(
        agent: Agent, tmp_path: Path) -> None:
    profile = {"purpose": "egov", "age_band": "18-24", "gender": "f"}
    status, s = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": 30,
                                                           "profile": profile})
    assert status == 201, s
    status, s2 = await agent.op("POST", "/sessions", json={"station": "s2", "minutes": 30})
    assert status == 201
    agent.clock.advance(600)
    for sid in (s["id"], s2["id"]):
        status, _ = await agent.op("POST", f"/sessions/{sid}/end")
        assert status == 200
    recs = closed_sessions(tmp_path / "data")
    assert recs[s["id"]]["profile"] == profile
    assert "profile" not in recs[s2["id"]]  # skipped: nothing at all, not empty values
    # the record is what the wire takes (the hub's schema checks the shape again)
    assert record_from_dict(recs[s["id"]]).profile.gender == "f"  # type: ignore[union-attr]


async def test_at_the_kiosk_after_the_voucher_once_per_session(agent: Agent,
                                                               tmp_path: Path) -> None:
    status, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    assert status == 201
    status, s = await agent.st("s1", "POST", "/redeem", json={"code": v["code"]})
    assert status == 201
    status, got = await agent.st("s1", "POST", "/session/profile",
                                 json={"purpose": "job", "gender": "m"})
    assert status == 200, got
    before = ledger_files(tmp_path / "data")
    status, again = await agent.st("s1", "POST", "/session/profile", json={"purpose": "egov"})
    assert status == 409 and again["error"] == "profile_given"
    assert ledger_files(tmp_path / "data") == before
    agent.clock.advance(300)
    status, _ = await agent.st("s1", "POST", "/session/end")
    assert status == 200
    assert closed_sessions(tmp_path / "data")[s["id"]]["profile"] == {"purpose": "job",
                                                                      "gender": "m"}
    # and given with the redeem itself
    status, v2 = await agent.op("POST", "/vouchers", json={"minutes": 60})
    status, s2 = await agent.st("s2", "POST", "/redeem",
                                json={"code": v2["code"], "profile": {"age_band": "55+"}})
    assert status == 201
    status, _ = await agent.st("s2", "POST", "/session/end")
    assert closed_sessions(tmp_path / "data")[s2["id"]]["profile"] == {"age_band": "55+"}


@pytest.mark.parametrize(("profile", "field"), [
    ({"gender": "woman"}, "profile.gender"),
    ({"purpose": "shopping"}, "profile.purpose"),
    ({"age_band": 30}, "profile.age_band"),
    ({"name": "Fatima"}, "profile.name"),
    ({"cin": "AB123456"}, "profile.cin"),
    ("egov", "profile"),
    ([["purpose", "egov"]], "profile"),
])
async def test_a_bad_profile_is_refused_naming_the_part_and_nothing_is_written(
        agent: Agent, tmp_path: Path, profile: Any, field: str) -> None:
    status, v = await agent.op("POST", "/vouchers", json={"minutes": 60})
    before = ledger_files(tmp_path / "data")
    status, body = await agent.op("POST", "/sessions", json={"station": "s1", "minutes": None,
                                                              "profile": profile})
    assert status == 400 and body["error"] == "bad_profile", body
    assert body["message"].startswith(field + ":"), body
    status, body = await agent.st("s2", "POST", "/redeem", json={"code": v["code"],
                                                                  "profile": profile})
    assert status == 400 and body["message"].startswith(field + ":"), body
    assert ledger_files(tmp_path / "data") == before
    status, body = await agent.op("GET", "/sessions")
    assert body == []


async def test_no_profile_on_a_voucher_sale(agent: Agent, tmp_path: Path) -> None:
    before = ledger_files(tmp_path / "data")
    status, body = await agent.op("POST", "/vouchers", json={"minutes": 60,
                                                              "profile": {"gender": "f"}})
    assert status == 400 and body["message"].startswith("profile:"), body
    assert ledger_files(tmp_path / "data") == before


def test_the_impact_lists_are_checked_naming_the_key(tmp_path: Path) -> None:
    cfg = parse_agent_config({**config_dict(tmp_path), "impact": {"genders": ["f", "m"]}})
    assert cfg.impact.genders == ("f", "m") and "egov" in cfg.impact.purposes
    for impact, key in (({"genders": []}, "impact.genders"),
                        ({"purposes": ["e gov"]}, "impact.purposes"),
                        ({"age_bands": ["<18", "<18"]}, "impact.age_bands"),
                        ({"colours": ["red"]}, "impact")):
        with pytest.raises(ConfigError) as got:
            parse_agent_config({**config_dict(tmp_path), "impact": impact})
        assert key in str(got.value), (impact, got.value)


def test_a_resumed_session_keeps_its_profile() -> None:
    start = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
    s = Session(id="x", station="s1", started_at=start, mono_start=100.0, limit_seconds=None,
                profile={"purpose": "school", "gender": "x"})
    cp = s.to_checkpoint(700.0)
    back = Session.from_checkpoint(cp, 5.0)  # another process: another monotonic clock
    assert back.profile == {"purpose": "school", "gender": "x"}
    assert back.billed_seconds(5.0) == 600
