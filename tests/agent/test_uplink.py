"""agent/uplink.py: the uplink state (pure, with ``now`` passed in), its config, the probe
against real sockets of 127.0.0.1, and the field it adds to the wire Health."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from agent_support import config_dict
from helpers import free_port

from agent.config import ConfigError, parse_agent_config
from agent.health import sample_health
from agent.uplink import UplinkConfig, UplinkMonitor, UplinkState, parse_uplink, probe_tcp
from wire.messages import Health, decode, encode

T0 = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)


def test_state_follows_the_internet_when_probed_else_the_hub_link() -> None:
    s = UplinkState()
    assert s.up is None and s.changed_at is None
    s.observe(T0, hub=True)
    assert (s.up, s.changed_at) == (True, T0)
    s.observe(T0 + timedelta(seconds=5), internet=False)  # a probe beats the hub link
    assert (s.up, s.hub, s.internet) == (False, True, False)
    assert s.changed_at == T0 + timedelta(seconds=5)
    s.observe(T0 + timedelta(seconds=9), hub=False)  # still down: no change
    assert s.changed_at == T0 + timedelta(seconds=5) and s.last_outage_s is None
    s.observe(T0 + timedelta(seconds=95), internet=True)
    assert s.up is True and s.last_outage_s == 90.0
    w = s.wire()
    assert (w.up, w.hub, w.internet, w.last_outage_s) == (True, False, True, 90.0)
    assert w.changed_at == (T0 + timedelta(seconds=95)).isoformat()


def test_hub_link_alone_counts_outages_too() -> None:
    s = UplinkState()
    s.observe(T0, hub=True)
    s.observe(T0 + timedelta(minutes=1), hub=False)
    s.observe(T0 + timedelta(minutes=31), hub=True)
    assert s.last_outage_s == 1800.0 and s.internet is None


def test_monitor_reads_the_hub_link_at_each_snapshot() -> None:
    connected = [False]
    now = [T0]
    m = UplinkMonitor(UplinkConfig(), lambda: connected[0], clock=lambda: now[0])
    assert m.snapshot()["up"] is False
    connected[0], now[0] = True, T0 + timedelta(seconds=3)
    snap = m.snapshot()
    assert snap["up"] is True and snap["hub"] is True and snap["internet"] is None
    assert snap["changed_at"] == now[0].isoformat()
    no_reporter = UplinkMonitor(UplinkConfig(), None)
    assert no_reporter.snapshot()["up"] is None  # nothing known: the kiosk says nothing


def test_probe_opens_a_real_connection_or_says_false() -> None:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        assert probe_tcp((("127.0.0.1", free_port()), ("127.0.0.1", port)), 1.0) is True
    assert probe_tcp((("127.0.0.1", port),), 1.0) is False  # closed now
    assert probe_tcp((), 1.0) is False


def test_config_of_the_probe(tmp_path: Path) -> None:
    cfg = parse_agent_config({**config_dict(tmp_path), "uplink": {
        "probe": ["1.1.1.1:53", "[2606:4700::1111]:443"], "interval_seconds": 30}})
    assert cfg.uplink.probe == (("1.1.1.1", 53), ("2606:4700::1111", 443))
    assert cfg.uplink.interval_seconds == 30
    assert parse_agent_config(config_dict(tmp_path)).uplink == UplinkConfig()
    assert parse_uplink({"probe": "example.org:80"}).probe == (("example.org", 80),)
    for bad, key in (({"probe": ["nohost"]}, "uplink.probe[0]"),
                     ({"probe": ["h:99999"]}, "uplink.probe[0]"),
                     ({"probe": 5}, "uplink.probe"),
                     ({"interval_seconds": 0}, "uplink.interval_seconds"),
                     ({"every": 1}, "uplink.every")):
        with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
            parse_uplink(bad)


def test_health_carries_the_uplink_and_old_payloads_still_decode(tmp_path: Path) -> None:
    s = UplinkState()
    s.observe(T0, hub=True, internet=False)
    h = sample_health(tmp_path, {"backlog": 0, "stations": [], "uplink": s.as_dict()},
                      boot_id="b", version="1")
    back = decode(encode(h), Health)
    assert back.uplink is not None and back.uplink.internet is False and back.uplink.up is False
    # an older agent's health (no uplink) decodes, with the field absent
    old = msgspec.json.decode(encode(h))
    del old["uplink"]
    assert decode(msgspec.json.encode(old), Health).uplink is None
    # a snapshot without the uplink (an app without the monitor) leaves the field out
    assert sample_health(tmp_path, {"backlog": 0}, boot_id="b", version="1").uplink is None
