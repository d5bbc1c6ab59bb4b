"""Health samples (agent/health.py) and the service's health snapshot: real psutil readings."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest

from agent import health
from agent.clock import FakeClock
from agent.config import parse_agent_config
from agent.health import prime_cpu_percent, sample_health
from agent.ledger import Ledger
from agent.meter.stations import STATION_ONLINE_SECONDS
from agent.operators import OperatorStore
from agent.service import AgentService
from wire.messages import Health, StationHealth, decode, encode

TOKENS = {"s1": "station-one-token-0001", "s2": "station-two-token-0002"}
NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
SNAPSHOT = {"backlog": 3, "stations": [
    {"id": "s1", "online": True, "last_seen_s": 2.5, "in_session": True},
    {"id": "s2", "online": False, "last_seen_s": None, "in_session": False},
]}


def test_sample_validates_against_the_wire_schema_and_is_sane(tmp_path: Path) -> None:
    prime_cpu_percent()
    h = sample_health(tmp_path, SNAPSHOT, boot_id="b00t", version="0.1.0", now=NOW,
                      boot_time=NOW.timestamp() - 3600.5)
    assert decode(encode(h), Health) == h  # strict wire validation of every field
    assert h.at == NOW.isoformat()
    assert h.uptime_s == 3600.5
    assert (h.boot_id, h.version) == ("b00t", "0.1.0")
    assert 0.0 <= h.cpu_percent <= 100.0
    assert 0.0 <= h.mem_percent <= 100.0 and h.mem_total > 0
    assert len(h.load) == 3 and all(x >= 0 for x in h.load)
    disk = psutil.disk_usage(str(tmp_path))
    assert h.disk_total == disk.total
    assert 0.0 <= h.disk_percent <= 100.0
    assert 0 < h.disk_free <= h.disk_total
    assert abs(h.disk_free - disk.free) < 256 * 1024 * 1024  # the same disk, a moment apart
    assert all(isinstance(v, float) for v in h.temps.values())
    assert h.net_sent >= 0 and h.net_recv >= 0
    assert 10 * 1024 * 1024 < h.agent_rss < 4 * 1024**3  # this Python process
    assert h.backlog == 3
    assert h.stations == [StationHealth(id="s1", online=True, last_seen_s=2.5, in_session=True),
                          StationHealth(id="s2", online=False)]


def test_uptime_comes_from_the_boot_time_by_default(tmp_path: Path) -> None:
    h = sample_health(tmp_path, {"backlog": 0, "stations": []}, boot_id="b", version="v")
    assert h.uptime_s == pytest.approx(datetime.now(UTC).timestamp() - psutil.boot_time(),
                                       abs=5)
    assert h.stations == [] and h.backlog == 0


Temp = namedtuple("Temp", "label current high critical")


def test_temperatures_keep_the_hottest_reading_of_each_group(
        monkeypatch: pytest.MonkeyPatch) -> None:
    groups = {"coretemp": [Temp("c0", 41.0, 80, 90), Temp("c1", 57.25, 80, 90)],
              "acpitz": [Temp("", 30.0, None, None)], "empty": []}
    monkeypatch.setattr(psutil, "sensors_temperatures", lambda: groups, raising=False)
    assert health.temperatures() == {"coretemp": 57.2, "acpitz": 30.0}


def test_no_temperature_sensors_is_an_empty_map(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.delattr(psutil, "sensors_temperatures", raising=False)
    h = sample_health(tmp_path, SNAPSHOT, boot_id="b", version="v", now=NOW)
    assert h.temps == {}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[AgentService, FakeClock]]:
    cfg = parse_agent_config({
        "cac_id": "ma-oriental-oujda-001", "data_dir": str(tmp_path / "data"),
        "timezone": "Africa/Casablanca",
        "mqtt": {"host": "127.0.0.1", "port": 1883}, "http": {"host": "127.0.0.1", "port": 0},
        "stations": [{"id": k, "token": v} for k, v in TOKENS.items()],
        "tariff": {"currency": "MAD", "block_minutes": 15, "block_price": 200,
                   "minimum_blocks": 1, "grace_seconds": 60},
    })
    clock = FakeClock(NOW)
    ledger = Ledger(cfg.data_dir, cfg.cac_id, cfg.tz)
    svc = AgentService(cfg, ledger, OperatorStore(cfg.data_dir), clock)
    try:
        yield svc, clock
    finally:
        ledger.close()


def test_service_snapshot_reports_backlog_and_station_heartbeats(
        service: tuple[AgentService, FakeClock]) -> None:
    svc, clock = service
    assert svc.health_snapshot() == {"backlog": 0, "content": {}, "tariff_version": 0,
                                     "stations": [
        {"id": "s1", "online": False, "last_seen_s": None, "in_session": False, "locked": False},
        {"id": "s2", "online": False, "last_seen_s": None, "in_session": False, "locked": False}]}
    svc.station_for_token(TOKENS["s1"], "s1")  # the kiosk of s1 polls
    svc.start_session("s1", 30, None, "amina")
    svc.sell_voucher(60, None, "amina")
    clock.advance(5)
    snap = svc.health_snapshot()
    assert snap["backlog"] == 1
    assert snap["stations"][0] == {"id": "s1", "online": True, "last_seen_s": 5.0,
                                   "in_session": True, "locked": False}
    svc.lock_station("s2", "operator:amina", "broken screen")
    assert svc.health_snapshot()["stations"][1]["locked"] is True
    clock.advance(STATION_ONLINE_SECONDS)
    assert svc.health_snapshot()["stations"][0]["online"] is False
