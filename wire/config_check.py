"""Checks shared by the agent's and the hub's TOML config parsers: errors name the key."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value is missing, unknown or invalid; the message names the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def check_int(key: str, value: object, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
    return value


def table(raw: object, key: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a table")
    return raw


def no_unknown(raw: Mapping[str, object], allowed: set[str], prefix: str) -> None:
    for k in raw:
        if k not in allowed:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")


def req(raw: Mapping[str, object], key: str, prefix: str) -> object:
    if key not in raw:
        raise ConfigError(f"{prefix}.{key}" if prefix else key, "is required")
    return raw[key]


def string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, f"must be a string, got {type(value).__name__}")
    return value


def read_config_toml(path: Path) -> dict[str, Any]:
    """Read a TOML config file; a relative ``[mqtt] ca_file`` is made absolute beside it (so
    the config works wherever the program is started). Errors are ConfigErrors, one line."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("", f"config file {path} not found") from None
    except OSError as exc:  # a directory, no permission, ...
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        # tomllib lets UnicodeDecodeError through for a file that is not UTF-8
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    mqtt = raw.get("mqtt")
    if isinstance(mqtt, dict) and isinstance(mqtt.get("ca_file"), str):
        mqtt["ca_file"] = str(path.resolve().parent / mqtt["ca_file"])
    http = raw.get("http")
    for key in ("tls_cert", "tls_key"):  # the hub's HTTPS files, likewise
        if isinstance(http, dict) and isinstance(http.get(key), str) and http[key]:
            http[key] = str(path.resolve().parent / http[key])
    content = raw.get("content")  # the hub's private signing key file (an agent's is base64)
    if isinstance(content, dict) and isinstance(content.get("signing_key_file"), str):
        content["signing_key_file"] = str(path.resolve().parent / content["signing_key_file"])
    return raw
