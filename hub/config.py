"""Typed hub configuration (CONTRACT §2): strict, with errors that name the bad key.

Optional keys beyond the contract (all have defaults):

- ``shared_subscription = false``: spread usage/health over several hub workers with MQTT 5
  shared subscriptions (DESIGN: Scale). Needs ``worker_id``; workers on one machine share
  ``data_dir`` (SQLite serialises their writes).
- ``worker_id``: this worker's name; it makes the MQTT client id ``hub-{hub_id}-{worker_id}``.
- ``flush_seconds = 5``: how often fleet state (last health, last seen) is written to the store.
- ``[mqtt] tls``, ``ca_file``, ``keepalive``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from wire.config_check import ConfigError as ConfigError
from wire.config_check import check_int as _check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import req as _req
from wire.config_check import string
from wire.config_check import table as _table

HUB_ID_RE = re.compile(r"[a-z0-9-]{3,64}")  # the wire contract's id rule
WORKER_ID_RE = re.compile(r"[a-z0-9-]{1,32}")

DEFAULT_OFFLINE_AFTER_SECONDS = 90
DEFAULT_FLUSH_SECONDS = 5
DEFAULT_KEEPALIVE_SECONDS = 30


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None
    keepalive: int = DEFAULT_KEEPALIVE_SECONDS


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"  # noqa: S104 - technicians reach the hub's dashboard over the network
    port: int = 8080


@dataclass(frozen=True)
class HubConfig:
    hub_id: str
    data_dir: Path
    mqtt: MqttConfig
    http: HttpConfig
    offline_after_seconds: int = DEFAULT_OFFLINE_AFTER_SECONDS
    shared_subscription: bool = False
    worker_id: str | None = None
    flush_seconds: int = DEFAULT_FLUSH_SECONDS

    @property
    def client_id(self) -> str:
        """The MQTT client id; stable across restarts so the broker keeps our session."""
        if self.worker_id:
            return f"hub-{self.hub_id}-{self.worker_id}"
        return f"hub-{self.hub_id}"

    @property
    def status_id(self) -> str:
        """The id under which this process publishes its retained hub status."""
        return f"{self.hub_id}-{self.worker_id}" if self.worker_id else self.hub_id

    @property
    def db_path(self) -> Path:
        return self.data_dir / "hub.sqlite3"


# ---------------------------------------------------------------- parsing helpers


def _str(value: object, key: str) -> str:
    value = string(value, key)
    if not value:
        raise ConfigError(key, "must not be empty")
    return value


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, "must be true or false")
    return value


def _parse_mqtt(raw: object) -> MqttConfig:
    m = _table(raw, "mqtt")
    _no_unknown(m, {"host", "port", "username", "password", "tls", "ca_file", "keepalive"},
                "mqtt")
    username = m.get("username")
    password = m.get("password")
    if username is not None:
        _str(username, "mqtt.username")
    if password is not None:
        _str(password, "mqtt.password")
    if (username is None) != (password is None):
        raise ConfigError("mqtt.password", "username and password must be given together")
    tls = _bool(m.get("tls", False), "mqtt.tls")
    ca_file: Path | None = None
    if "ca_file" in m:
        ca_file = Path(_str(m["ca_file"], "mqtt.ca_file"))
        if not tls:
            raise ConfigError("mqtt.ca_file", "only makes sense with tls = true")
        if not ca_file.is_file():
            raise ConfigError("mqtt.ca_file", f"no such file {str(ca_file)!r}")
    return MqttConfig(
        host=_str(_req(m, "host", "mqtt"), "mqtt.host"),
        port=_check_int("mqtt.port", _req(m, "port", "mqtt"), 1, 65535),
        username=username,
        password=password,
        tls=tls,
        ca_file=ca_file,
        keepalive=_check_int("mqtt.keepalive", m.get("keepalive", DEFAULT_KEEPALIVE_SECONDS),
                             5, 3600),
    )


def parse_hub_config(raw: Mapping[str, object]) -> HubConfig:
    """Validate a decoded hub.toml; raises ConfigError naming the first bad key."""
    _no_unknown(
        raw,
        {"hub_id", "data_dir", "offline_after_seconds", "mqtt", "http",
         "shared_subscription", "worker_id", "flush_seconds"},
        "",
    )
    hub_id = _str(_req(raw, "hub_id", ""), "hub_id")
    if not HUB_ID_RE.fullmatch(hub_id):
        raise ConfigError("hub_id", f"must match [a-z0-9-]{{3,64}}, got {hub_id!r}")
    data_dir = Path(_str(_req(raw, "data_dir", ""), "data_dir"))
    offline_after = _check_int(
        "offline_after_seconds", _req(raw, "offline_after_seconds", ""), 1, 7 * 24 * 3600)

    worker_id: str | None = None
    if "worker_id" in raw:
        worker_id = _str(raw["worker_id"], "worker_id")
        if not WORKER_ID_RE.fullmatch(worker_id):
            raise ConfigError("worker_id", f"must match [a-z0-9-]{{1,32}}, got {worker_id!r}")
        if len(hub_id) + 1 + len(worker_id) > 64:
            raise ConfigError("worker_id", "hub_id-worker_id must be at most 64 characters")
    shared = _bool(raw.get("shared_subscription", False), "shared_subscription")
    if shared and worker_id is None:
        raise ConfigError("worker_id", "is required with shared_subscription = true "
                                       "(each worker needs its own MQTT client id)")

    mqtt = _parse_mqtt(_req(raw, "mqtt", ""))
    h = _table(_req(raw, "http", ""), "http")
    _no_unknown(h, {"host", "port"}, "http")
    http = HttpConfig(
        host=_str(_req(h, "host", "http"), "http.host"),
        port=_check_int("http.port", _req(h, "port", "http"), 0, 65535),
    )
    return HubConfig(
        hub_id=hub_id,
        data_dir=data_dir,
        mqtt=mqtt,
        http=http,
        offline_after_seconds=offline_after,
        shared_subscription=shared,
        worker_id=worker_id,
        flush_seconds=_check_int("flush_seconds",
                                 raw.get("flush_seconds", DEFAULT_FLUSH_SECONDS), 1, 3600),
    )


def load_hub_config(path: Path) -> HubConfig:
    """Read and validate a hub.toml file."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} not found") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return parse_hub_config(raw)
