"""hub/config.py: the CONTRACT §2 hub config parses; every bad value names its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from hub.config import ConfigError, load_hub_config, parse_hub_config

CONTRACT_TOML = """
hub_id = "hub-oriental"
data_dir = "/var/lib/cac-hub"
offline_after_seconds = 90   # a CAC silent this long is offline even without its last will

[mqtt]
host = "127.0.0.1"
port = 1883
username = "hub"            # optional
password = "secret"         # optional

[http]
host = "0.0.0.0"
port = 8080
"""

BASE: dict[str, Any] = {
    "hub_id": "hub-oriental",
    "data_dir": "/var/lib/cac-hub",
    "offline_after_seconds": 90,
    "mqtt": {"host": "127.0.0.1", "port": 1883},
    "http": {"host": "0.0.0.0", "port": 8080},
}


def with_(path: str, value: object) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = raw
    for p in parents:
        node = node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return raw


DELETE = object()


def test_contract_example_loads(tmp_path: Path) -> None:
    f = tmp_path / "hub.toml"
    f.write_text(CONTRACT_TOML)
    cfg = load_hub_config(f)
    assert cfg.hub_id == "hub-oriental"
    assert cfg.data_dir == Path("/var/lib/cac-hub")
    assert cfg.offline_after_seconds == 90
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.username) == ("127.0.0.1", 1883, "hub")
    assert cfg.mqtt.password == "secret"
    assert "secret" not in repr(cfg)
    assert (cfg.http.host, cfg.http.port) == ("0.0.0.0", 8080)
    assert cfg.client_id == "hub-hub-oriental"
    assert cfg.status_id == "hub-oriental"
    assert not cfg.shared_subscription
    assert cfg.db_path == Path("/var/lib/cac-hub/hub.sqlite3")


def test_worker_options() -> None:
    cfg = parse_hub_config({**BASE, "shared_subscription": True, "worker_id": "w2",
                            "flush_seconds": 2})
    assert cfg.shared_subscription
    assert cfg.client_id == "hub-hub-oriental-w2"
    assert cfg.status_id == "hub-oriental-w2"
    assert cfg.flush_seconds == 2


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        (with_("hub_id", DELETE), "hub_id", "required"),
        (with_("hub_id", "Hub Oriental"), "hub_id", "must match"),
        (with_("hub_id", 7), "hub_id", "must be a string"),
        (with_("data_dir", DELETE), "data_dir", "required"),
        (with_("data_dir", ""), "data_dir", "empty"),
        (with_("offline_after_seconds", DELETE), "offline_after_seconds", "required"),
        (with_("offline_after_seconds", 0), "offline_after_seconds", "between"),
        (with_("offline_after_seconds", "90"), "offline_after_seconds", "integer"),
        (with_("offline_after_seconds", True), "offline_after_seconds", "integer"),
        (with_("colour", "blue"), "colour", "unknown key"),
        (with_("mqtt", DELETE), "mqtt", "required"),
        (with_("mqtt", "localhost"), "mqtt", "table"),
        (with_("mqtt.port", 0), "mqtt.port", "between"),
        (with_("mqtt.host", DELETE), "mqtt.host", "required"),
        (with_("mqtt.user", "hub"), "mqtt.user", "unknown key"),
        (with_("mqtt.username", "hub"), "mqtt.password", "together"),
        (with_("mqtt.tls", "yes"), "mqtt.tls", "true or false"),
        (with_("mqtt.ca_file", "/etc/ca.pem"), "mqtt.ca_file", "tls = true"),
        (with_("mqtt.keepalive", 1), "mqtt.keepalive", "between"),
        (with_("http", DELETE), "http", "required"),
        (with_("http.port", 70000), "http.port", "between"),
        (with_("http.tls", True), "http.tls", "unknown key"),
        (with_("shared_subscription", "true"), "shared_subscription", "true or false"),
        (with_("shared_subscription", True), "worker_id", "required"),
        (with_("worker_id", "W_1"), "worker_id", "must match"),
        (with_("flush_seconds", 0), "flush_seconds", "between"),
    ],
)
def test_bad_values_name_the_key(raw: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as err:
        parse_hub_config(raw)
    assert err.value.key == key
    assert str(err.value).startswith(f"{key}: ")


def test_ca_file_must_exist(tmp_path: Path) -> None:
    raw = with_("mqtt.tls", True)
    raw["mqtt"]["ca_file"] = str(tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="no such file") as err:
        parse_hub_config(raw)
    assert err.value.key == "mqtt.ca_file"
    (tmp_path / "ca.pem").write_text("x")
    raw["mqtt"]["ca_file"] = str(tmp_path / "ca.pem")
    assert parse_hub_config(raw).mqtt.ca_file == tmp_path / "ca.pem"


def test_worker_id_length_is_cross_checked() -> None:
    raw = {**BASE, "hub_id": "h" * 60, "worker_id": "w" * 10}
    with pytest.raises(ConfigError, match="64") as err:
        parse_hub_config(raw)
    assert err.value.key == "worker_id"


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_hub_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_hub_config(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("hub_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_hub_config(bad)
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'hub_id = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_hub_config(latin)
