"""Alarm rules (pure) and the alarm book: raised, cleared, restored, acknowledged."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from hub import alarms
from hub.config import AlarmConfig
from hub.fleet import CacView
from hub.store import Store
from tests.hub.factories import CAC, OTHER, health_msg
from wire.messages import Health

NOW = 1_714_557_600.0  # 2024-05-01T10:00:00Z
CFG = AlarmConfig(offline_minutes=10, disk_percent=90, temperature_c=80, backlog_records=500,
                  backlog_samples=3, clock_skew_seconds=300, content_stale_hours=48)


def view(cac_id: str = CAC, *, online: bool = True, last_seen: float = NOW,
         health: Health | None = None, health_seen: float | None = NOW,
         first_seen: float = NOW - 86400 * 10) -> CacView:
    if health is None:
        health = msgspec.structs.replace(health_msg(), at="2024-05-01T10:00:00+00:00")
    return CacView(cac_id, online, "online" if online else "offline", first_seen, last_seen,
                   "boot-1", "0.1.0", health, health_seen)


def kinds(v: CacView, backlogs: tuple[int, ...] = ()) -> set[str]:
    return {c.kind for c in alarms.conditions(v, NOW, CFG, backlogs)}


def h(**changes: object) -> Health:
    base = msgspec.structs.replace(health_msg(), at="2024-05-01T10:00:00+00:00")
    return msgspec.structs.replace(base, **changes)


def test_a_healthy_cac_has_no_alarm() -> None:
    assert kinds(view()) == set()


def test_offline_only_after_the_configured_minutes() -> None:
    assert kinds(view(online=False, last_seen=NOW - 599)) == set()
    assert kinds(view(online=False, last_seen=NOW - 600)) == {"offline"}
    # an offline CAC's stale health raises nothing else
    assert kinds(view(online=False, last_seen=NOW - 700, health=h(disk_percent=99.0))) \
        == {"offline"}


def test_disk_temperature_backlog_skew_and_stale_content() -> None:
    assert kinds(view(health=h(disk_percent=90.0))) == set()  # not over 90
    assert kinds(view(health=h(disk_percent=90.5))) == {"disk"}
    assert kinds(view(health=h(temps={"a": 60.0, "b": 81.0}))) == {"temperature"}
    assert kinds(view(health=h(backlog=500))) == {"backlog"}
    assert kinds(view(health=h(backlog=12)), (1, 2, 5, 12)) == {"backlog"}  # grew 3 times
    assert kinds(view(health=h(backlog=12)), (2, 2, 5, 12)) == set()  # not every time
    assert kinds(view(health=h(at="2024-05-01T10:05:01+00:00"))) == {"clock_skew"}
    assert kinds(view(health=h(at="2024-05-01T11:04:59+01:00"))) == set()  # same instant
    stale = {"last_success_at": "2024-04-29T09:59:00+00:00", "installed": 3}
    fresh = {"last_success_at": "2024-04-30T10:00:00+00:00", "installed": 3}
    assert kinds(view(health=h(content=stale))) == {"content_stale"}
    assert kinds(view(health=h(content=fresh))) == set()
    never = {"last_success_at": None, "installed": 0}
    assert kinds(view(health=h(content=never))) == {"content_stale"}
    assert kinds(view(health=h(content=never), first_seen=NOW - 3600)) == set()


def test_a_rule_set_to_zero_is_off() -> None:
    cfg = AlarmConfig(disk_percent=0, temperature_c=0)
    v = view(health=h(disk_percent=99.0, temps={"cpu": 120.0}))
    assert alarms.conditions(v, NOW, cfg) == []


def test_the_book_raises_once_clears_and_survives_a_restart(tmp_path: Path) -> None:
    book = alarms.AlarmBook(CFG)
    hot = view(health=h(disk_percent=95.0))
    with Store(tmp_path / "hub.sqlite3") as store:
        raised, cleared = book.evaluate([hot, view(OTHER)], NOW)
        assert [(c.cac_id, c.kind) for c in raised] == [(CAC, "disk")] and cleared == []
        with store.transaction():
            opened = alarms.save(store.db, raised, cleared, NOW)
        book.opened(opened[0])
        assert book.evaluate([hot], NOW + 2) == ([], [])  # still true: nothing new
        # a restarted hub does not raise it again
        book2 = alarms.AlarmBook(CFG, alarms.load_active(store.db))
        assert book2.evaluate([hot], NOW + 3) == ([], [])
        with store.transaction():
            assert alarms.acknowledge(store.db, opened[0].id, "tech", NOW + 4)
            assert not alarms.acknowledge(store.db, opened[0].id, "other", NOW + 5)
        raised, cleared = book2.evaluate([view()], NOW + 10)
        assert raised == [] and [(a.kind, a.cleared_at) for a in cleared] == [("disk", NOW + 10)]
        with store.transaction():
            alarms.save(store.db, raised, cleared, NOW + 10)
        [a] = alarms.listing(store.db)
        assert (a.raised_at, a.cleared_at, a.acked_by, a.active) == (NOW, NOW + 10, "tech", False)
        assert alarms.load_active(store.db) == []


def test_backlog_growth_is_tracked_from_successive_reports() -> None:
    book = alarms.AlarmBook(CFG)
    raised = []
    for i, backlog in enumerate((1, 3, 6, 10)):
        v = view(health=h(backlog=backlog), health_seen=NOW + i)
        got, _ = book.evaluate([v], NOW + i)
        book.active.update({(c.cac_id, c.kind): alarms.Alarm(i, c.cac_id, c.kind, c.message,
                                                             NOW) for c in got})
        raised += got
        # the same report seen again by the next tick does not count as growth
        assert book.evaluate([v], NOW + i + 0.5)[0] == []
    assert [c.kind for c in raised] == ["backlog"]


def test_the_alarm_table_exists_in_a_fresh_store(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3"):
        pass
    db = sqlite3.connect(tmp_path / "s.sqlite3")
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"alarms", "commands", "audit", "users", "health_1m", "health_1h"} <= names
