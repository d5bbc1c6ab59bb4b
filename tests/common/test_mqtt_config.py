"""common/mqtt_config.py: the [mqtt] table of agent.toml (no keepalive, any string) and
hub.toml (keepalive, no empty strings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.mqtt_config import MqttConfig, parse_mqtt
from wire.config_check import ConfigError


def test_defaults_and_a_full_table(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    got = parse_mqtt({"host": "h", "port": 8883, "username": "u", "password": "s3cr3t",
                      "tls": True, "ca_file": str(ca), "keepalive": 60},
                     keepalive=True, nonempty=True)
    assert got == MqttConfig("h", 8883, "u", "s3cr3t", True, ca, 60)
    assert "s3cr3t" not in repr(got)
    assert parse_mqtt({"host": "h", "port": 1}, keepalive=False, nonempty=False).keepalive == 30


@pytest.mark.parametrize(("table", "key"), [
    ({"host": "h"}, "mqtt.port"),
    ({"host": "h", "port": 0}, "mqtt.port"),
    ({"host": "h", "port": 1, "username": "u"}, "mqtt.password"),
    ({"host": "h", "port": 1, "tls": "yes"}, "mqtt.tls"),
    ({"host": "h", "port": 1, "ca_file": "/nonexistent"}, "mqtt.ca_file"),
    ({"host": "h", "port": 1, "tls": True, "ca_file": "/nonexistent"}, "mqtt.ca_file"),
    ({"host": "h", "port": 1, "bogus": 1}, "mqtt.bogus"),
])
def test_errors_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mqtt(table, keepalive=True, nonempty=True)
    assert err.value.key == key


def test_the_agent_has_no_keepalive_key_and_the_hub_no_empty_strings() -> None:
    with pytest.raises(ConfigError, match=r"mqtt\.keepalive: unknown key"):
        parse_mqtt({"host": "h", "port": 1, "keepalive": 9}, keepalive=False, nonempty=False)
    with pytest.raises(ConfigError, match=r"mqtt\.host: must not be empty"):
        parse_mqtt({"host": "", "port": 1}, keepalive=True, nonempty=True)
    assert parse_mqtt({"host": "", "port": 1}, keepalive=False, nonempty=False).host == ""
