"""The ``[mqtt]`` table of agent.toml and hub.toml (CONTRACT §2): one parser for both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from wire.config_check import ConfigError, check_int, no_unknown, req, string, table

DEFAULT_KEEPALIVE_SECONDS = 30
_KEYS = {"host", "port", "username", "password", "tls", "ca_file"}


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: Path | None = None  # the CA that signed the broker's certificate (tls only)
    keepalive: int = DEFAULT_KEEPALIVE_SECONDS


def parse_mqtt(raw: object, *, keepalive: bool, nonempty: bool) -> MqttConfig:
    """Validate an ``[mqtt]`` table; ConfigError names the bad key.

    ``keepalive``: the table may set it (the hub's); ``nonempty``: strings may not be empty
    (the hub's rule; the agent's accepts any string).
    """
    def text(value: object, key: str) -> str:
        value = string(value, key)
        if nonempty and not value:
            raise ConfigError(key, "must not be empty")
        return value

    m = table(raw, "mqtt")
    no_unknown(m, _KEYS | {"keepalive"} if keepalive else _KEYS, "mqtt")
    username = m.get("username")
    password = m.get("password")
    if username is not None:
        text(username, "mqtt.username")
    if password is not None:
        text(password, "mqtt.password")
    if (username is None) != (password is None):
        raise ConfigError("mqtt.password", "username and password must be given together")
    tls = m.get("tls", False)
    if not isinstance(tls, bool):
        raise ConfigError("mqtt.tls", "must be true or false")
    ca_file: Path | None = None
    if "ca_file" in m:
        ca_file = Path(text(m["ca_file"], "mqtt.ca_file"))
        if not tls:
            raise ConfigError("mqtt.ca_file", "only makes sense with tls = true")
        if not ca_file.is_file():
            raise ConfigError("mqtt.ca_file", f"no such file {str(ca_file)!r}")
    return MqttConfig(
        host=text(req(m, "host", "mqtt"), "mqtt.host"),
        port=check_int("mqtt.port", req(m, "port", "mqtt"), 1, 65535),
        username=username,
        password=password,
        tls=tls,
        ca_file=ca_file,
        keepalive=check_int("mqtt.keepalive", m.get("keepalive", DEFAULT_KEEPALIVE_SECONDS),
                            5, 3600),
    )
