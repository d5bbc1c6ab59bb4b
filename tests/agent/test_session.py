"""The pure session state machine."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.config import Band, Tariff
from agent.meter.session import EndReason, Session, SessionError
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
