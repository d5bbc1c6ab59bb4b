"""agent/config.py: a full CONTRACT §2 config parses; every bad value names its key."""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.config import (
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_VOUCHER_VALID_DAYS,
    Band,
    ConfigError,
    Tariff,
    load_agent_config,
    parse_agent_config,
    parse_tariff,
    tariff_to_dict,
)

FULL_TOML = """
cac_id = "ma-oriental-oujda-001"
data_dir = "/var/lib/cac-agent"
timezone = "Africa/Casablanca"

[mqtt]
host = "127.0.0.1"
port = 1883
username = "ma-oriental-oujda-001"
password = "broker-secret"
tls = false

[http]
host = "0.0.0.0"
port = 8081

[[stations]]
id = "s1"
token = "token-of-station-one"

[[stations]]
id = "s2"
token = "token-of-station-two"

[tariff]
currency = "MAD"
block_minutes = 15
block_price = 200
minimum_blocks = 1
grace_seconds = 60

[[tariff.bands]]
from = "20:00"
to = "08:00"
block_price = 100

[[tariff.bands]]
from = "12:00"
to = "14:30"
block_price = 150

[tariff.concessions]
student = 50
senior = 30
"""

MINIMAL_TOML = """
cac_id = "abc"
data_dir = "data"
timezone = "UTC"

[mqtt]
host = "broker.lan"
port = 1883

[http]
host = "127.0.0.1"
port = 0

[[stations]]
id = "k"
token = "0123456789abcdef"

[tariff]
currency = "EUR"
block_minutes = 30
block_price = 0
minimum_blocks = 0
grace_seconds = 0
"""


def full() -> dict[str, Any]:
    return tomllib.loads(FULL_TOML)


# ------------------------------------------------------------------ valid configs


def test_full_config_parses_every_field() -> None:
    cfg = parse_agent_config(full())
    assert cfg.cac_id == "ma-oriental-oujda-001"
    assert cfg.data_dir == Path("/var/lib/cac-agent")
    assert cfg.timezone == "Africa/Casablanca"
    assert cfg.tz == ZoneInfo("Africa/Casablanca")
    assert cfg.mqtt.host == "127.0.0.1"
    assert cfg.mqtt.port == 1883
    assert cfg.mqtt.username == "ma-oriental-oujda-001"
    assert cfg.mqtt.password == "broker-secret"
    assert cfg.mqtt.tls is False
    assert cfg.http.host == "0.0.0.0"
    assert cfg.http.port == 8081
    assert [(s.id, s.token) for s in cfg.stations] == [
        ("s1", "token-of-station-one"), ("s2", "token-of-station-two")]
    s2 = cfg.station("s2")
    assert s2 is not None
    assert s2.token == "token-of-station-two"
    assert cfg.station("s3") is None
    assert cfg.tariff == Tariff(
        currency="MAD", block_minutes=15, block_price=200, minimum_blocks=1, grace_seconds=60,
        bands=(Band(time(20, 0), time(8, 0), 100), Band(time(12, 0), time(14, 30), 150)),
        concessions={"student": 50, "senior": 30},
    )
    assert cfg.tariff.block_seconds == 900
    assert cfg.checkpoint_seconds == DEFAULT_CHECKPOINT_SECONDS
    assert cfg.voucher_valid_days == DEFAULT_VOUCHER_VALID_DAYS


def test_password_is_not_in_repr() -> None:
    cfg = parse_agent_config(full())
    assert "broker-secret" not in repr(cfg.mqtt)


def test_minimal_config_takes_defaults_for_optional_keys() -> None:
    cfg = parse_agent_config(tomllib.loads(MINIMAL_TOML))
    assert cfg.mqtt.username is None
    assert cfg.mqtt.password is None
    assert cfg.mqtt.tls is False
    assert cfg.tariff.bands == ()
    assert dict(cfg.tariff.concessions) == {}
    assert cfg.tariff.currency == "EUR"
    assert cfg.http.port == 0


def test_optional_extra_keys_parse() -> None:
    raw = full()
    raw["checkpoint_seconds"] = 5
    raw["voucher_valid_days"] = 7
    raw["mqtt"]["tls"] = True
    cfg = parse_agent_config(raw)
    assert (cfg.checkpoint_seconds, cfg.voucher_valid_days, cfg.mqtt.tls) == (5, 7, True)


def test_band_contains_is_half_open_and_wraps() -> None:
    night = Band(time(20, 0), time(8, 0), 100)
    assert night.contains(time(20, 0))
    assert night.contains(time(0, 0))
    assert night.contains(time(7, 59))
    assert not night.contains(time(8, 0))
    assert not night.contains(time(19, 59))
    lunch = Band(time(12, 0), time(14, 30), 150)
    assert lunch.contains(time(12, 0))
    assert not lunch.contains(time(14, 30))
    assert not lunch.contains(time(11, 59))
    assert Band(time(6, 0), time(6, 0), 1).contains(time(5, 59))  # from == to: all day


# ------------------------------------------------------------------ invalid values


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """Set a value at a dotted path like 'tariff.bands.0.from'."""
    *parents, last = path.split(".")

    def apply(raw: dict[str, Any]) -> None:
        node: Any = raw
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[int(last) if last.isdigit() else last] = value

    return apply


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = path.split(".")

    def apply(raw: dict[str, Any]) -> None:
        node: Any = raw
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        del node[last]

    return apply


BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # (case id, mutation, key the error must name)
    ("unknown top-level key", _set("colour", "blue"), "colour"),
    ("unknown key in mqtt", _set("mqtt.qos", 1), "mqtt.qos"),
    ("unknown key in tariff", _set("tariff.block_prize", 1), "tariff.block_prize"),
    ("unknown key in a band", _set("tariff.bands.1.price", 1), "tariff.bands[1].price"),
    ("unknown key in a station", _set("stations.0.name", "x"), "stations[0].name"),
    ("cac_id upper case", _set("cac_id", "MA-Oujda"), "cac_id"),
    ("cac_id too short", _set("cac_id", "ab"), "cac_id"),
    ("cac_id underscore", _set("cac_id", "ma_oujda"), "cac_id"),
    ("cac_id not a string", _set("cac_id", 123), "cac_id"),
    ("unknown timezone", _set("timezone", "Mars/Olympus_Mons"), "timezone"),
    ("timezone is a zone directory", _set("timezone", "Africa"), "timezone"),
    ("timezone path traversal", _set("timezone", "../etc/passwd"), "timezone"),
    ("band from one digit hour", _set("tariff.bands.0.from", "8:00"), "tariff.bands[0].from"),
    ("band from 24:00", _set("tariff.bands.0.from", "24:00"), "tariff.bands[0].from"),
    ("band to minute 60", _set("tariff.bands.0.to", "07:60"), "tariff.bands[0].to"),
    ("band to with seconds", _set("tariff.bands.1.to", "14:30:00"), "tariff.bands[1].to"),
    ("band from not a string", _set("tariff.bands.0.from", 2000), "tariff.bands[0].from"),
    ("negative block price", _set("tariff.block_price", -1), "tariff.block_price"),
    ("negative band price", _set("tariff.bands.0.block_price", -5),
     "tariff.bands[0].block_price"),
    ("negative grace", _set("tariff.grace_seconds", -1), "tariff.grace_seconds"),
    ("zero block minutes", _set("tariff.block_minutes", 0), "tariff.block_minutes"),
    ("concession over 100", _set("tariff.concessions.student", 101),
     "tariff.concessions.student"),
    ("negative concession", _set("tariff.concessions.senior", -10),
     "tariff.concessions.senior"),
    ("concession bad name", _set("tariff.concessions.Student Card", 10),
     "tariff.concessions.Student Card"),
    ("bool block minutes", _set("tariff.block_minutes", True), "tariff.block_minutes"),
    ("bool band price", _set("tariff.bands.0.block_price", False),
     "tariff.bands[0].block_price"),
    ("bool concession", _set("tariff.concessions.student", True),
     "tariff.concessions.student"),
    ("bool mqtt port", _set("mqtt.port", True), "mqtt.port"),
    ("float price", _set("tariff.block_price", 2.5), "tariff.block_price"),
    ("string price", _set("tariff.block_price", "200"), "tariff.block_price"),
    ("mqtt port 0", _set("mqtt.port", 0), "mqtt.port"),
    ("http port too big", _set("http.port", 65536), "http.port"),
    ("tls not a bool", _set("mqtt.tls", "yes"), "mqtt.tls"),
    ("bad currency", _set("tariff.currency", "dirham"), "tariff.currency"),
    ("username without password", _del("mqtt.password"), "mqtt.password"),
    ("password without username", _del("mqtt.username"), "mqtt.password"),
    ("username not a string", _set("mqtt.username", 5), "mqtt.username"),
    ("duplicate station id", _set("stations.1.id", "s1"), "stations[1].id"),
    ("bad station id", _set("stations.0.id", "S 1"), "stations[0].id"),
    ("short token", _set("stations.0.token", "short"), "stations[0].token"),
    ("shared token", _set("stations.1.token", "token-of-station-one"), "stations[1].token"),
    ("no stations", _set("stations", []), "stations"),
    ("stations not an array", _set("stations", {"id": "s1"}), "stations"),
    ("bands not an array", _set("tariff.bands", {"from": "20:00"}), "tariff.bands"),
    ("mqtt not a table", _set("mqtt", "127.0.0.1"), "mqtt"),
    ("checkpoint zero", _set("checkpoint_seconds", 0), "checkpoint_seconds"),
    ("missing cac_id", _del("cac_id"), "cac_id"),
    ("missing data_dir", _del("data_dir"), "data_dir"),
    ("missing timezone", _del("timezone"), "timezone"),
    ("missing mqtt", _del("mqtt"), "mqtt"),
    ("missing mqtt host", _del("mqtt.host"), "mqtt.host"),
    ("missing http port", _del("http.port"), "http.port"),
    ("missing stations", _del("stations"), "stations"),
    ("missing station token", _del("stations.1.token"), "stations[1].token"),
    ("missing tariff", _del("tariff"), "tariff"),
    ("missing currency", _del("tariff.currency"), "tariff.currency"),
    ("missing block_minutes", _del("tariff.block_minutes"), "tariff.block_minutes"),
    ("missing minimum_blocks", _del("tariff.minimum_blocks"), "tariff.minimum_blocks"),
    ("missing grace_seconds", _del("tariff.grace_seconds"), "tariff.grace_seconds"),
    ("missing band to", _del("tariff.bands.0.to"), "tariff.bands[0].to"),
    ("missing band price", _del("tariff.bands.1.block_price"), "tariff.bands[1].block_price"),
]


@pytest.mark.parametrize(("mutate", "key"), [pytest.param(m, k, id=i) for i, m, k in BAD])
def test_bad_value_raises_config_error_naming_the_key(
    mutate: Callable[[dict[str, Any]], None], key: str
) -> None:
    raw = copy.deepcopy(full())
    mutate(raw)
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: ") as info:
        parse_agent_config(raw)
    assert info.value.key == key
    assert info.value.problem


def test_the_fixture_itself_is_valid() -> None:
    # guards the parametrized cases above: each fails because of its mutation alone
    parse_agent_config(copy.deepcopy(full()))


def test_unknown_key_error_lists_the_allowed_keys() -> None:
    raw = full()
    raw["tariff"]["bands"][0]["price"] = 1
    with pytest.raises(ConfigError, match=r"unknown key .*block_price, from, to"):
        parse_agent_config(raw)


def test_tariff_checks_itself_when_built_directly() -> None:
    with pytest.raises(ConfigError, match=r"^tariff\.bands\[0\]\.block_price: "):
        Tariff(bands=(Band(time(1, 0), time(2, 0), -1),))
    with pytest.raises(ConfigError, match=r"^tariff\.minimum_blocks: "):
        Tariff(minimum_blocks=-1)


# ------------------------------------------------------------------ files


def test_load_agent_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(FULL_TOML, encoding="utf-8")
    assert load_agent_config(path) == parse_agent_config(full())


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=r"nope\.toml not found"):
        load_agent_config(path)


def test_load_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('cac_id = "abc\n[mqtt\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_agent_config(path)


def test_load_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(b'cac_id = "\xff\xfe"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_agent_config(path)


def test_load_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_agent_config(tmp_path)


def test_load_file_with_a_bad_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(FULL_TOML.replace('from = "20:00"', 'from = "20h00"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^tariff\.bands\[0\]\.from: .*'20h00'"):
        load_agent_config(path)


# ------------------------------------------------------------------ tariff_to_dict

ROUND_TRIP = [
    parse_agent_config(full()).tariff,
    Tariff(),
    Tariff(currency="EUR", block_minutes=1, block_price=0, minimum_blocks=0, grace_seconds=0),
    Tariff(bands=(Band(time(6, 0), time(6, 0), 7), Band(time(23, 59), time(0, 1), 0)),
           concessions={"a": 0, "b_2": 100}),
]


@pytest.mark.parametrize("tariff", ROUND_TRIP)
def test_tariff_to_dict_round_trips(tariff: Tariff) -> None:
    as_dict = tariff_to_dict(tariff)
    assert parse_tariff(as_dict) == tariff
    assert set(as_dict) <= {"currency", "block_minutes", "block_price", "minimum_blocks",
                            "grace_seconds", "bands", "concessions"}


def test_tariff_to_dict_writes_local_times_as_hhmm() -> None:
    d = tariff_to_dict(parse_agent_config(full()).tariff)
    assert d["bands"][0] == {"from": "20:00", "to": "08:00", "block_price": 100}
    assert d["concessions"] == {"student": 50, "senior": 30}


def test_parse_tariff_uses_the_prefix_in_errors() -> None:
    raw = tariff_to_dict(Tariff())
    del raw["currency"]
    with pytest.raises(ConfigError, match=r"^console\.tariff\.currency: is required"):
        parse_tariff(raw, prefix="console.tariff")
