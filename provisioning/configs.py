"""The hub's and the agents' TOML config files (CONTRACT §2), written from plain dicts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

AGENT_DATA_DIR = "/var/lib/cac-agent"
AGENT_HTTP_PORT = 8081
TIMEZONE = "Africa/Casablanca"
OFFLINE_AFTER_SECONDS = 90

# A sane starting tariff for a Moroccan CAC; the hub can push another one (set_tariff).
DEFAULT_TARIFF: dict[str, Any] = {
    "currency": "MAD",
    "block_minutes": 15,
    "block_price": 200,  # centimes: 2 MAD per started quarter hour
    "minimum_blocks": 1,
    "grace_seconds": 60,
}
TARIFF_EXAMPLES = """\
# Optional, e.g.:
# [[tariff.bands]]        # evenings are cheaper
# from = "20:00"
# to = "08:00"
# block_price = 100
# [tariff.concessions]    # percent off for a category
# student = 50
"""


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string (ASCII, \\uXXXX escapes) is a TOML basic string
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_table_array(v: object) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def _emit(table: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    for k, v in table.items():
        if not isinstance(v, Mapping) and not _is_table_array(v):
            out.append(f"{k} = {_value(v)}")
    for k, v in table.items():
        name = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping):
            out += ["", f"[{name}]"]
            _emit(v, name, out)
        elif _is_table_array(v):
            for item in v:
                out += ["", f"[[{name}]]"]
                _emit(item, name, out)


def to_toml(doc: Mapping[str, Any], header: str = "", trailer: str = "") -> str:
    """TOML text of a dict of str/int/bool values, tables and arrays of tables."""
    out: list[str] = [f"# {line}".rstrip() for line in header.splitlines()]
    _emit(doc, "", out)
    return "\n".join(out).lstrip("\n") + "\n" + (("\n" + trailer) if trailer else "")


def hub_config(*, hub_id: str, data_dir: str, mqtt_host: str, mqtt_port: int, username: str,
               password: str, tls: bool, ca_file: str | None, http_host: str,
               http_port: int, http_tls: tuple[str, str] | None = None,
               signing_key_file: str | None = None) -> dict[str, Any]:
    mqtt: dict[str, Any] = {"host": mqtt_host, "port": mqtt_port, "username": username,
                            "password": password, "tls": tls}
    if tls and ca_file:
        mqtt["ca_file"] = ca_file
    http: dict[str, Any] = {"host": http_host, "port": http_port}
    if http_tls is not None:  # HTTPS: dashboard logins and API tokens never cross in clear
        http["tls_cert"], http["tls_key"] = http_tls
    doc: dict[str, Any] = {
        "hub_id": hub_id,
        "data_dir": data_dir,
        "offline_after_seconds": OFFLINE_AFTER_SECONDS,
        "mqtt": mqtt,
        "http": http,
    }
    if signing_key_file is not None:
        doc["content"] = {"signing_key_file": signing_key_file}
    return doc


def agent_config(*, cac_id: str, data_dir: str, timezone: str, mqtt_host: str, mqtt_port: int,
                 password: str, tls: bool, ca_file: str | None, http_host: str,
                 http_port: int,
                 hub_url: str | None, stations: list[dict[str, str]]) -> dict[str, Any]:
    mqtt: dict[str, Any] = {"host": mqtt_host, "port": mqtt_port, "username": cac_id,
                            "password": password, "tls": tls}
    if tls and ca_file:
        mqtt["ca_file"] = ca_file
    doc: dict[str, Any] = {
        "cac_id": cac_id,
        "data_dir": data_dir,
        "timezone": timezone,
        "mqtt": mqtt,
        "http": {"host": http_host, "port": http_port},
    }
    if hub_url:
        doc["content"] = {"hub_url": hub_url}
    doc["stations"] = stations
    doc["tariff"] = dict(DEFAULT_TARIFF)
    return doc
