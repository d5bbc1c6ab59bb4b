"""Health history: one-minute buckets folded into hours, pruned so it stays bounded;
server-side SVG charts; report aggregates from stored records."""

from __future__ import annotations

from pathlib import Path

import msgspec

from hub import charts, history, reports
from hub.fleet import FleetState
from hub.ingest import Ingest
from hub.store import Store
from tests.hub.factories import CAC, OTHER, health_msg, session, usage, void, voucher_sale
from wire.messages import encode
from wire.topics import Kind, cac_topic

T0 = 1_714_557_600.0  # a whole hour (2024-05-01T10:00:00Z)


def health(cpu: float, backlog: int = 0, temp: float | None = 50.0) -> bytes:
    h = msgspec.structs.replace(health_msg(backlog), cpu_percent=cpu,
                                temps={} if temp is None else {"cpu": temp})
    return encode(h)


def test_buckets_are_min_avg_max_per_minute_and_fold_into_hours(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.sqlite3") as store:
        ingest = Ingest(store, FleetState(90, T0))
        topic = cac_topic(CAC, Kind.HEALTH)
        for i, cpu in enumerate((10.0, 20.0, 60.0)):  # minute 0: three samples
            ingest.handle(topic, health(cpu, backlog=i), T0 + i * 10)
        ingest.handle(topic, health(40.0, temp=None), T0 + 65)  # minute 1: no temperature
        assert ingest.flush_history(T0 + 70) == 1  # only the finished minute
        ingest.handle(topic, health(80.0), T0 + 3600 + 5)  # the next hour: closes minute 1
        ingest.flush(T0 + 3600 + 61)
        day = history.series(store.db, CAC, T0 - 1, hourly=False)
        assert [p.t for p in day] == [T0, T0 + 60, T0 + 3600]
        assert day[0].n == 3 and day[0].values["cpu"] == (10.0, 30.0, 60.0)
        assert day[0].values["backlog"] == (0.0, 1.0, 2.0)
        assert day[1].values["temp"] == (None, None, None)
        hours = history.series(store.db, CAC, T0 - 1, hourly=True)
        assert [(p.t, p.n) for p in hours] == [(T0, 4), (T0 + 3600, 1)]
        assert hours[0].values["cpu"] == (10.0, 32.5, 60.0)  # n-weighted: (10+20+60+40)/4
        assert hours[0].values["temp"][0] == 50.0

        svg = charts.svg(day, "cpu", "CPU", "%", T0 - 60, T0 + 3700, 60, 100.0)
        assert svg.startswith("<svg") and svg.count("<polyline") == 2  # a gap: two runs
        assert "no data" in charts.svg([], "cpu", "CPU", "%", T0, T0 + 60, 60)


def test_history_is_pruned_to_24_hours_and_30_days(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.sqlite3") as store:
        buf = history.HistoryBuffer()
        t = T0
        # a sample every 10 minutes for 32 days
        while t < T0 + 32 * 86400:
            buf.add(CAC, t, (1.0, 2.0, 3.0, None, 0.0))
            t += 600
        with store.transaction():
            history.write(store.db, buf.take_closed(t, everything=True))
            history.prune(store.db, t)
        minutes = store.db.execute("SELECT MIN(t), COUNT(*) FROM health_1m").fetchone()
        hours = store.db.execute("SELECT MIN(t), COUNT(*) FROM health_1h").fetchone()
        assert minutes[0] >= t - 86400 and minutes[1] <= 24 * 6
        assert hours[0] >= t - 30 * 86400 and hours[1] <= 30 * 24


def test_daily_report_and_hours_from_stored_records(tmp_path: Path) -> None:
    with Store(tmp_path / "hub.sqlite3") as store:
        ingest = Ingest(store, FleetState(90, T0))
        void_rec = void(4, f"{CAC}-rec-3", 800)
        ingest.handle(cac_topic(CAC, Kind.USAGE),
                      usage(session(1, fee=200), session(2, fee=300), voucher_sale(3), void_rec),
                      T0)
        ingest.handle(cac_topic(OTHER, Kind.USAGE), usage(session(1, OTHER, fee=50)), T0)
        rows = reports.daily(store.db)
        assert [(r.cac_id, r.day) for r in rows] == [(OTHER, "2024-05-01"), (CAC, "2024-05-01")]
        mine = rows[1]
        assert (mine.sessions, mine.billed_seconds, mine.billed_minutes, mine.session_fees,
                mine.voucher_sales, mine.voucher_sales_amount, mine.voids, mine.voids_amount,
                mine.revenue) == (2, 2400, 40, 500, 1, 800, 1, 800, 500)
        assert reports.totals(rows)["revenue"] == 550
        assert reports.daily(store.db, since="2024-05-02") == []
        assert [r.cac_id for r in reports.daily(store.db, region="oriental")] == [OTHER, CAC]
        hours = reports.by_hour(store.db)
        assert hours[9] == 3 and sum(hours) == 3  # sessions started at 09:00 local
        text = reports.daily_csv(rows)
        assert text.splitlines()[0].startswith("cac_id,day,currency,sessions")
        assert "rec-" not in text and "s1" not in text  # no session ids, no stations
