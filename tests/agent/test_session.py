"""The pure session state machine."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import Band, Tariff
from agent.meter.session import (
    EndReason,
    Session,
    SessionError,
    outage_seconds,
    resume_instant,
)
from agent.meter.tariff import compute_fee

TZ = ZoneInfo("Africa/Casablanca")
TARIFF = Tariff(block_minutes=15, block_price=200, minimum_blocks=1, grace_seconds=60,
                bands=(Band(datetime(2000, 1, 1, 20).time(), datetime(2000, 1, 1, 8).time(),
                            100),),
                concessions={"student": 50})
T0 = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def make(limit: int | None = 1800, **kw: object) -> Session:
    return Session(id="s-1", station="s1", started_at=T0, mono_start=100.0,
                   limit_seconds=limit, **kw)  # type: ignore[arg-type]


def test_billed_time_is_monotonic_elapsed_floored_and_capped() -> None:
    s = make(limit=600)
    assert s.billed_seconds(100.0) == 0
    assert s.billed_seconds(159.9) == 59
    assert s.billed_seconds(99.0) == 0  # a reading before the start never goes negative
    assert s.billed_seconds(100 + 10_000) == 600
    assert s.remaining_seconds(100 + 250) == 350
    assert not s.exhausted(100 + 599)
    assert s.exhausted(100 + 600)


def test_open_ended_session_has_no_limit_and_never_exhausts() -> None:
    s = make(limit=None)
    assert s.open_ended
    assert s.remaining_seconds(1e6) is None
    assert not s.exhausted(1e9)
    assert s.billed_seconds(100 + 7200) == 7200


def test_close_bills_per_contract_and_derives_end_from_billed_time() -> None:
    s = make(limit=3600, category="student")
    rec = s.close(100 + 1000, EndReason.CITIZEN, TARIFF, TZ)
    assert rec.id == s.id
    assert rec.billed_seconds == 1000
    assert rec.ended_at == T0 + timedelta(seconds=1000)
    # 1000 s = 2 blocks of 200 at 09:00 local, student 50 % off
    assert rec.fee == 200 == compute_fee(TARIFF, T0, 1000, TZ, "student")
    r = rec.to_record()
    assert r["type"] == "session" and r["end_reason"] == "citizen" and r["paid_by"] == "cash"
    assert r["minutes"] == 60


def test_closing_late_never_bills_past_the_limit() -> None:
    s = make(limit=900)
    rec = s.close(100 + 5000, EndReason.TIME_EXHAUSTED, TARIFF, TZ)
    assert rec.billed_seconds == 900
    assert rec.fee == 200


def test_session_under_grace_is_free() -> None:
    assert make().close(100 + 59, EndReason.CITIZEN, TARIFF, TZ).fee == 0


def test_voucher_session_costs_nothing_at_close() -> None:
    s = make(limit=3600, voucher_id="sale-1")
    rec = s.close(100 + 3000, EndReason.CITIZEN, TARIFF, TZ)
    assert rec.fee == 0 and rec.billed_seconds == 3000
    assert rec.to_record()["paid_by"] == "voucher"
    assert s.fee_so_far(100 + 3000, TARIFF, TZ) == 0


def test_extend_adds_minutes_and_refuses_what_cannot_be_extended() -> None:
    s = make(limit=600)
    assert s.extend(15, 200.0).limit_seconds == 600 + 900
    with pytest.raises(SessionError, match="open-ended") as e1:
        make(limit=None).extend(10, 200.0)
    assert e1.value.code == "open_ended"
    with pytest.raises(SessionError, match="voucher"):
        make(voucher_id="v").extend(10, 200.0)
    with pytest.raises(SessionError, match="used up"):
        s.extend(10, 100 + 600)
    with pytest.raises(SessionError, match="at most"):
        s.extend(24 * 60, 200.0)


def test_checkpoint_round_trip_continues_billing_from_checkpoint() -> None:
    s = make(limit=1800, category="student", operator="amina")
    cp = s.to_checkpoint(100 + 400)
    assert cp["billed_seconds"] == 400
    # a new process has a different monotonic origin
    back = Session.from_checkpoint(cp, 5.0)
    assert back.billed_seconds(5.0) == 400
    assert back.billed_seconds(5.0 + 100) == 500
    assert (back.id, back.station, back.started_at, back.limit_seconds, back.category,
            back.operator) == (s.id, s.station, s.started_at, 1800, "student", "amina")


def test_restart_recovery_bills_the_checkpointed_time() -> None:
    rec = make(limit=None).close_billed(1234, EndReason.RESTART_RECOVERY, TARIFF, TZ)
    assert rec.billed_seconds == 1234
    assert rec.end_reason is EndReason.RESTART_RECOVERY
    assert rec.fee == compute_fee(TARIFF, T0, 1234, TZ)
    with pytest.raises(ValueError, match="negative"):
        make().close_billed(-1, EndReason.RESTART_RECOVERY, TARIFF, TZ)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        Session(id="x", station="s1", started_at=datetime(2026, 1, 1), mono_start=0.0,
                limit_seconds=None)


# ---------------------------------------------------------------- pause, resume, restart (§7)


def test_a_pause_stops_billed_time_and_a_resume_goes_on_from_there() -> None:
    s = make(limit=1800).pause(400.0, "  power cut  ")  # 300 s billed
    assert (s.state, s.pause_reason) == ("paused", "power cut")
    assert s.billed_seconds(5000.0) == 300 and s.remaining_seconds(5000.0) == 1500
    assert not s.exhausted(1e9)
    with pytest.raises(SessionError) as exc:
        s.pause(5000.0)
    assert exc.value.code == "session_paused"
    r = s.resume(4000.0)
    assert r.state == "running" and r.pause_reason is None
    assert r.billed_seconds(4000.0) == 300 and r.billed_seconds(4100.0) == 400
    assert r.segments == ((T0 + timedelta(seconds=3900), 300),)  # anchored on the start
    with pytest.raises(SessionError) as exc:
        r.resume(4100.0)
    assert exc.value.code == "session_running"
    with pytest.raises(SessionError) as exc:
        make(limit=60).pause(500.0)  # its time is used up
    assert exc.value.code == "session_over"


def test_a_closed_paused_session_ends_when_billing_stopped() -> None:
    s = make(limit=None).pause(700.0)  # 600 s billed, paused at T0 + 10 min
    rec = s.close(99_999.0, EndReason.OPERATOR, TARIFF, TZ)
    assert rec.billed_seconds == 600 and rec.ended_at == T0 + timedelta(seconds=600)


def test_a_checkpoint_resumes_where_it_stopped_and_a_paused_one_stays_paused() -> None:
    s = make(limit=1800)
    cp = s.to_checkpoint(220.0)  # 120 s billed at T0 + 2 min
    assert cp["at"] == (T0 + timedelta(seconds=120)).isoformat() and cp["state"] == "running"
    back_at = T0 + timedelta(minutes=10)
    back = Session.from_checkpoint(cp, 7.0, back_at)  # a new process: another mono origin
    assert back.billed_seconds(7.0) == 120 and back.billed_seconds(67.0) == 180
    assert back.segments == ((back_at, 120),)
    assert back.wall_at(67.0) == back_at + timedelta(seconds=60)
    rec = back.close(67.0, EndReason.OPERATOR, TARIFF, TZ)
    assert rec.ended_at == back_at + timedelta(seconds=60)  # billing ran on from back_at
    paused = Session.from_checkpoint(s.pause(220.0, "lunch").to_checkpoint(300.0), 7.0)
    assert (paused.state, paused.pause_reason, paused.billed_seconds(1e6)) == (
        "paused", "lunch", 120)
    again = Session.from_checkpoint(back.to_checkpoint(67.0), 3.0, back_at)
    assert [b for _, b in again.segments] == [120, 180]


@pytest.mark.parametrize("damage", [
    {"billed_seconds": "x"}, {"billed_seconds": -1}, {"billed_seconds": True},
    {"started_at": "nope"}, {"started_at": "2026-06-10T09:00:00"}, {"limit_seconds": -5},
    {"limit_seconds": "30"}, {"station": ""}, {"segments": [["later", 3]]},
])
def test_an_unreadable_checkpoint_raises(damage: dict[str, object]) -> None:
    cp = {**make().to_checkpoint(200.0), **damage}
    with pytest.raises((ValueError, KeyError, TypeError)):
        Session.from_checkpoint(cp, 0.0)


def test_the_outage_is_measured_on_the_boot_clock_unless_the_machine_rebooted() -> None:
    cp = {**make().to_checkpoint(200.0), "boot_id": "b1", "boot_seconds": 500.0}
    at = datetime.fromisoformat(cp["at"])
    wall_jumped = at + timedelta(hours=5)
    assert outage_seconds(cp, wall_jumped, ("b1", 520.0)) == 20.0
    assert resume_instant(cp, wall_jumped, ("b1", 520.0), 20.0) == at + timedelta(seconds=20)
    # a reboot: the wall clock is all there is; one behind the checkpoint counts as no time
    assert outage_seconds(cp, wall_jumped, ("b2", 30.0)) == 5 * 3600
    assert outage_seconds(cp, at - timedelta(days=300), ("b2", 30.0)) == 0.0
    assert resume_instant(cp, at - timedelta(days=300), ("b2", 30.0), 0.0) == at
    # written by an older agent: no "at", no boot stamp; start + billed is no later
    old = {k: v for k, v in cp.items() if k not in ("at", "boot_id", "boot_seconds")}
    assert outage_seconds(old, at + timedelta(seconds=90), ("b1", 600.0)) == 90.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3600), st.integers(0, 3600)), min_size=1,
                max_size=8))
def test_billed_time_is_the_sum_of_the_running_stretches(
        stretches: list[tuple[int, int]]) -> None:
    """Run r_i seconds, pause p_i seconds, in turn: billed = sum(r_i); the fee is the fee
    of that billed time with its blocks at or after the wall-clock ones."""
    s, mono = make(limit=None), 100.0
    for run, pause in stretches:
        mono += run
        s = s.pause(mono)
        mono += pause
        s = s.resume(mono)
    billed = sum(r for r, _ in stretches)
    assert s.billed_seconds(mono) == billed
    rec = s.close(mono, EndReason.OPERATOR, TARIFF, TZ)
    assert rec.billed_seconds == billed
    assert rec.ended_at >= T0 + timedelta(seconds=billed)
    assert rec.fee >= 0 and len(s.segments) <= len(stretches)
