"""The hub's reports count a record on the CAC's own local day and hour, as the agent's day
close does (issue 23). The records are made by the agent's own code (the session record of
agent/meter/session.py, stamped by the real Ledger, converted by the reporter's
record_from_dict), so they are exactly what an agent sends: UTC times plus the CAC's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from agent.ledger import Ledger
from agent.meter.session import ClosedSession, EndReason
from hub import reports
from hub.store import Store
from tests.hub.factories import session
from wire.messages import record_from_dict

CAC = "ma-oriental-oujda-001"
CASABLANCA = ZoneInfo("Africa/Casablanca")  # UTC+1, but UTC+0 during Ramadan


def agent_sessions(data_dir: Path, spans: list[tuple[str, int, int]]) -> tuple[Ledger, list]:
    """Close one session per (UTC end time, minutes, fee) in a real agent ledger; return the
    ledger and its outbox as wire records."""
    ledger = Ledger(data_dir, CAC, CASABLANCA)
    for i, (end, minutes, fee) in enumerate(spans):
        ended = datetime.fromisoformat(end).replace(tzinfo=UTC)
        started = ended - timedelta(minutes=minutes)
        sid = f"sess-{i}"
        ledger.start_session({"id": sid, "station": "s1"})
        closed = ClosedSession(
            id=sid, station="s1", started_at=started, ended_at=ended,
            billed_seconds=minutes * 60, fee=fee, currency="MAD", category=None,
            voucher_id=None, operator="amina", minutes=None, end_reason=EndReason("citizen"))
        # as agent/usecases/sessions.py writes it
        ledger.close_session({**closed.to_record(), "at": closed.ended_at.isoformat()})
    return ledger, [record_from_dict(r) for r in ledger.outbox()]


def test_a_session_after_local_midnight_counts_on_the_next_local_day(tmp_path: Path) -> None:
    # 23:30Z on 10 June is 00:30 on 11 June in Casablanca; 22:30Z is still 23:30 on 10 June
    ledger, recs = agent_sessions(tmp_path / "agent", [("2026-06-10T23:30:00", 20, 200),
                                                       ("2026-06-10T22:30:00", 20, 100)])
    try:
        assert all(r.ended_at.endswith("+00:00") and r.tz == "Africa/Casablanca" for r in recs)
        agent_days = sorted(str(ledger.local_day(r.ended_at)) for r in recs)
    finally:
        ledger.close()
    with Store(tmp_path / "hub.sqlite3") as store:
        store.store_usage(CAC, recs, 0.0)
        rows = reports.daily(store.db)
        hours = reports.by_hour(store.db)
        june_11 = reports.by_hour(store.db, since="2026-06-11", until="2026-06-11")
    assert [(r.day, r.sessions, r.session_fees) for r in rows] == [
        ("2026-06-10", 1, 100), ("2026-06-11", 1, 200)]
    assert agent_days == ["2026-06-10", "2026-06-11"]  # the agent's own day close agrees
    # started 23:10Z = 00:10 local and 22:10Z = 23:10 local
    assert hours[0] == 1 and hours[23] == 1 and sum(hours) == 2
    assert june_11[0] == 1 and sum(june_11) == 1


def test_during_ramadan_casablanca_is_utc_and_the_day_follows(tmp_path: Path) -> None:
    # 1 March 2026 is in Ramadan (UTC+0): 23:30Z is 23:30 local, the same day; on 25 March
    # (UTC+1 again) 23:30Z is 00:30 the next day
    ledger, recs = agent_sessions(tmp_path / "agent", [("2026-03-01T23:30:00", 15, 200),
                                                       ("2026-03-25T23:30:00", 15, 300)])
    ledger.close()
    with Store(tmp_path / "hub.sqlite3") as store:
        store.store_usage(CAC, recs, 0.0)
        rows = reports.daily(store.db)
        hours = reports.by_hour(store.db)
    assert [(r.day, r.session_fees) for r in rows] == [("2026-03-01", 200),
                                                       ("2026-03-26", 300)]
    assert hours[23] == 1 and hours[0] == 1  # 23:15 local in Ramadan, 00:15 after it


def test_a_record_without_a_zone_counts_by_its_own_offset(tmp_path: Path) -> None:
    """An older agent's record (UTC times, no tz) keeps the day its timestamp's offset
    gives: UTC, as it was counted before."""
    import msgspec

    old = msgspec.structs.replace(session(1), tz=None)  # started 08:00Z (09:00 local)
    assert old.started_at == "2024-05-01T08:00:00+00:00"
    with Store(tmp_path / "hub.sqlite3") as store:
        store.store_usage(old.cac_id, [old], 0.0)
        assert [r.day for r in reports.daily(store.db)] == ["2024-05-01"]
        hours = reports.by_hour(store.db)
        assert hours[8] == 1 and sum(hours) == 1
    with Store(tmp_path / "hub2.sqlite3") as store:  # the same record from today's agent
        store.store_usage(old.cac_id, [session(1)], 0.0)
        hours = reports.by_hour(store.db)
        assert hours[9] == 1 and sum(hours) == 1


def test_an_unknown_zone_falls_back_to_the_offset(tmp_path: Path) -> None:
    ledger, recs = agent_sessions(tmp_path / "agent", [("2026-06-10T23:30:00", 20, 200)])
    ledger.close()
    import msgspec

    bad = msgspec.structs.replace(recs[0], tz="Mars/Olympus_Mons")
    with Store(tmp_path / "hub.sqlite3") as store:
        store.store_usage(CAC, [bad], 0.0)
        assert [r.day for r in reports.daily(store.db)] == ["2026-06-10"]  # UTC, as written
