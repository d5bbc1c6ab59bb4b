"""A wall-clock jump (NTP, a wrong RTC) neither adds nor removes billed time (CONTRACT §3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.clock import FakeClock
from agent.config import parse_agent_config
from agent.ledger import Ledger
from agent.meter.session import EndReason
from agent.meter.tariff import compute_fee
from agent.operators import OperatorStore
from agent.service import AgentService

# 10:00 UTC is 11:00 in Casablanca (UTC+01 in January), between a cheap band that ends at
# 11:00 and a dear one from 12:00: a start or an end read off a jumped wall clock costs more
# or less than 300
START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def config_dict(data_dir: Path) -> dict[str, object]:
    return {
        "cac_id": "ma-oriental-oujda-001",
        "data_dir": str(data_dir),
        "timezone": "Africa/Casablanca",
        "mqtt": {"host": "127.0.0.1", "port": 1883},
        "http": {"host": "127.0.0.1", "port": 0},
        "stations": [{"id": "s1", "token": "t" * 32}, {"id": "s2", "token": "u" * 32}],
        "tariff": {
            "currency": "MAD", "block_minutes": 5, "block_price": 100, "minimum_blocks": 1,
            "grace_seconds": 60,
            # local 12:00-13:00 is dear: a wall clock an hour fast would bill dear blocks
            "bands": [{"from": "12:00", "to": "13:00", "block_price": 1000},
                      {"from": "10:00", "to": "11:00", "block_price": 10}],
        },
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=START)


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[AgentService]:
    config = parse_agent_config(config_dict(tmp_path / "data"))
    ledger = Ledger(config.data_dir, config.cac_id, config.tz)
    operators = OperatorStore(config.data_dir)
    try:
        yield AgentService(config, ledger, operators, clock)
    finally:
        ledger.close()
        operators.close()


def fee_from_start(svc: AgentService, billed: int) -> int:
    return compute_fee(svc.tariff, START, billed, svc.tz)


@pytest.mark.parametrize("jump", [3600, -3600, 86400, -86400])
def test_operator_session_bills_monotonic_time_across_a_wall_jump(
    service: AgentService, clock: FakeClock, jump: int
) -> None:
    started = service.start_session("s1", 60, None, "amina")
    clock.advance(10 * 60)
    clock.jump_wall(jump)
    clock.advance(5 * 60)
    view = service.station_session("s1")["session"]
    assert view["billed_seconds"] == 900
    assert view["remaining_seconds"] == 45 * 60
    closed = service.end(started["id"], EndReason.OPERATOR)
    assert closed["billed_seconds"] == 900
    assert closed["fee"] == fee_from_start(service, 900) == 300  # three 100-centime blocks
    # the record's times come from the start plus billed time, not from the jumped clock
    assert closed["started_at"] == START.isoformat()
    assert datetime.fromisoformat(closed["ended_at"]) - START == (
        datetime(2026, 1, 15, 10, 15, tzinfo=UTC) - START)
    assert closed["end_reason"] == "operator"


@pytest.mark.parametrize("jump", [3600, -3600])
def test_open_ended_session_fee_ignores_a_wall_jump(
    service: AgentService, clock: FakeClock, jump: int
) -> None:
    started = service.start_session("s1", None, None, "amina")
    clock.advance(10 * 60)
    clock.jump_wall(jump)
    clock.advance(5 * 60)
    closed = service.end(started["id"], EndReason.OPERATOR)
    assert closed["billed_seconds"] == 900
    assert closed["fee"] == fee_from_start(service, 900)


def test_fixed_session_is_not_cut_short_by_a_forward_jump(
    service: AgentService, clock: FakeClock
) -> None:
    service.start_session("s1", 30, None, "amina")
    clock.advance(60)
    clock.jump_wall(2 * 3600)  # far past the session's wall-clock end
    assert service.tick() == []
    view = service.station_session("s1")["session"]
    assert view["remaining_seconds"] == 29 * 60


def test_voucher_session_gets_no_extra_minutes_from_a_backward_jump(
    service: AgentService, clock: FakeClock
) -> None:
    sold = service.sell_voucher(30, None, "amina")
    service.redeem("s1", sold["code"])
    clock.advance(10 * 60)
    clock.jump_wall(-3600)
    clock.advance(5 * 60)
    view = service.station_session("s1")
    assert view["session"]["remaining_seconds"] == 15 * 60
    assert view["session"]["voucher_minutes_left"] == 15
    closed = service.end_on_station("s1", EndReason.CITIZEN)
    assert closed["billed_seconds"] == 900
    assert closed["fee"] == 0  # paid by the voucher
    assert closed["voucher_minutes_left"] == 15
    assert service.voucher_info(sold["code"])["seconds_left"] == 15 * 60

    # redeemed again after another backward jump: the rest of the balance, not more
    clock.jump_wall(-3600)
    again = service.redeem("s1", sold["code"])
    assert again["limit_seconds"] == 15 * 60
    clock.advance(14 * 60)
    assert service.tick() == []
    clock.advance(60)
    [exhausted] = service.tick()
    assert exhausted["end_reason"] == "time_exhausted"
    assert exhausted["billed_seconds"] == 15 * 60
    assert service.voucher_info(sold["code"])["seconds_left"] == 0
    assert service.sessions == {}


def test_voucher_session_runs_out_on_monotonic_time_after_a_forward_jump(
    service: AgentService, clock: FakeClock
) -> None:
    sold = service.sell_voucher(20, None, "amina")
    service.redeem("s2", sold["code"])
    clock.jump_wall(3 * 3600)
    clock.advance(19 * 60)
    assert service.tick() == []  # a jump forward did not eat the balance
    clock.advance(60)
    [closed] = service.tick()
    assert closed["billed_seconds"] == 20 * 60
    assert service.voucher_info(sold["code"])["seconds_left"] == 0


def test_restart_recovery_bills_the_checkpoint_not_the_wall_clock(
    service: AgentService, clock: FakeClock
) -> None:
    service.start_session("s1", 60, None, "amina")
    clock.advance(8 * 60)
    service.checkpoint()
    clock.advance(20)  # the agent is down 20 s...
    clock.jump_wall(5 * 3600)  # ...and comes back with its clock far ahead
    # a new process: same ledger, no sessions in memory
    revived = AgentService(service.config, service.ledger, service.operators, clock)
    assert revived.recover() == []  # the boot-time clock says 20 s: resumed, not closed
    (s,) = revived.sessions.values()
    assert s.billed_seconds(clock.monotonic()) == 8 * 60
    rec = revived.end(s.id, EndReason.OPERATOR)
    assert rec["billed_seconds"] == 8 * 60
    assert rec["fee"] == fee_from_start(service, 8 * 60)
    assert service.ledger.active_checkpoints() == []


def test_after_a_reboot_the_wall_clock_decides_and_past_the_limit_bills_the_checkpoint(
    service: AgentService, clock: FakeClock
) -> None:
    service.start_session("s1", 60, None, "amina")
    clock.advance(8 * 60)
    service.checkpoint()
    clock.boot_id = "fake-boot-2"  # a power cut: the boot-time clock starts again
    clock.jump_wall(5 * 3600)
    revived = AgentService(service.config, service.ledger, service.operators, clock)
    [rec] = revived.recover()
    assert rec["end_reason"] == "restart_recovery"
    assert rec["billed_seconds"] == 8 * 60
    assert rec["fee"] == fee_from_start(service, 8 * 60)
    assert service.ledger.active_checkpoints() == []
