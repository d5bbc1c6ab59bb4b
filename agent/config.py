"""Typed agent configuration (CONTRACT §2): strict, with errors that name the bad key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.impact import ImpactConfig, parse_impact
from agent.meter.tariff import CATEGORY_RE as CATEGORY_RE
from agent.meter.tariff import Band as Band
from agent.meter.tariff import Tariff as Tariff
from agent.printing import PrintingConfig, parse_printing
from agent.uplink import UplinkConfig, parse_uplink
from common.ids import CAC_ID_RE as CAC_ID_RE
from common.ids import STATION_ID_RE as STATION_ID_RE
from common.mqtt_config import MqttConfig as MqttConfig
from common.mqtt_config import parse_mqtt
from common.signing import SigningError, load_public
from wire.catalogue import CatalogueItem, parse_catalogue
from wire.config_check import ConfigError as ConfigError
from wire.config_check import check_int as _check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import read_config_toml
from wire.config_check import req as _req
from wire.config_check import string as _str
from wire.config_check import table as _table

HHMM_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])")

DEFAULT_CHECKPOINT_SECONDS = 15
DEFAULT_VOUCHER_VALID_DAYS = 30
DEFAULT_HEALTH_INTERVAL_SECONDS = 30
DEFAULT_RESUME_WITHIN_MINUTES = 30  # CONTRACT §7; 0: never resume, close as before
MAX_RESUME_WITHIN_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Station:
    id: str
    token: str


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"  # noqa: S104 - stations reach the agent over the site LAN
    port: int = 8081


@dataclass(frozen=True)
class ContentConfig:
    """``[content]``: the portal content cache (agent/content.py); no hub_url, no sync."""

    hub_url: str | None = None
    quota_mb: int = 2048
    reserve_mb: int = 250
    window: tuple[time, time] | None = None  # local time; None = any time
    max_kbps: int = 0  # kilobits per second; 0 = no cap
    poll_seconds: int = 300
    pinned: tuple[str, ...] = ()
    signing_key: str | None = None  # base64 Ed25519 public key of the hub (CONTRACT §10)
    ca_file: Path | None = None  # trusted for an https hub_url ([mqtt] ca_file by default)


@dataclass(frozen=True)
class AgentConfig:
    cac_id: str
    data_dir: Path
    timezone: str
    mqtt: MqttConfig
    http: HttpConfig
    stations: tuple[Station, ...]
    tariff: Tariff
    checkpoint_seconds: int = DEFAULT_CHECKPOINT_SECONDS
    voucher_valid_days: int = DEFAULT_VOUCHER_VALID_DAYS
    health_interval_seconds: int = DEFAULT_HEALTH_INTERVAL_SECONDS
    resume_within_minutes: int = DEFAULT_RESUME_WITHIN_MINUTES
    content: ContentConfig = field(default_factory=ContentConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    catalogue: tuple[CatalogueItem, ...] = ()  # CONTRACT §8: [[catalogue]]
    require_shift: bool = False  # CONTRACT §8: no money taken outside an open shift
    printing: PrintingConfig = field(default_factory=PrintingConfig)  # CONTRACT §8
    impact: ImpactConfig = field(default_factory=ImpactConfig)  # CONTRACT §9b

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def station(self, station_id: str) -> Station | None:
        for s in self.stations:
            if s.id == station_id:
                return s
        return None


# ---------------------------------------------------------------- parsing helpers


def _hhmm(value: object, key: str) -> time:
    s = _str(value, key)
    m = HHMM_RE.fullmatch(s)
    if not m:
        raise ConfigError(key, f"must be a local time HH:MM, got {s!r}")
    return time(int(m.group(1)), int(m.group(2)))


def parse_tariff(raw: object, prefix: str = "tariff") -> Tariff:
    """Build a Tariff from a TOML-like mapping; the same rules serve the file and the console."""
    t = _table(raw, prefix)
    _no_unknown(
        t,
        {"currency", "block_minutes", "block_price", "minimum_blocks", "grace_seconds",
         "bands", "concessions"},
        prefix,
    )
    bands_raw = t.get("bands", [])
    if not isinstance(bands_raw, list):
        raise ConfigError(f"{prefix}.bands", "must be an array of tables ([[tariff.bands]])")
    bands = []
    for i, b in enumerate(bands_raw):
        key = f"{prefix}.bands[{i}]"
        bt = _table(b, key)
        _no_unknown(bt, {"from", "to", "block_price"}, key)
        bands.append(
            Band(
                start=_hhmm(_req(bt, "from", key), f"{key}.from"),
                end=_hhmm(_req(bt, "to", key), f"{key}.to"),
                block_price=_check_int(
                    f"{key}.block_price", _req(bt, "block_price", key), 0, 10**9),
            )
        )
    conc = _table(t.get("concessions", {}), f"{prefix}.concessions")
    tariff = Tariff(
        currency=_str(_req(t, "currency", prefix), f"{prefix}.currency"),
        block_minutes=_check_int(
            f"{prefix}.block_minutes", _req(t, "block_minutes", prefix), 1, 24 * 60),
        block_price=_check_int(f"{prefix}.block_price", _req(t, "block_price", prefix), 0, 10**9),
        minimum_blocks=_check_int(
            f"{prefix}.minimum_blocks", _req(t, "minimum_blocks", prefix), 0, 1000),
        grace_seconds=_check_int(
            f"{prefix}.grace_seconds", _req(t, "grace_seconds", prefix), 0, 24 * 3600),
        bands=tuple(bands),
        concessions={str(k): v for k, v in conc.items()},
    )
    _currency(tariff.currency, f"{prefix}.currency")  # checked last: the other keys first
    return tariff


def tariff_to_dict(t: Tariff) -> dict[str, Any]:
    """The inverse of parse_tariff (for storing a tariff edited at the console)."""
    out: dict[str, Any] = {
        "currency": t.currency,
        "block_minutes": t.block_minutes,
        "block_price": t.block_price,
        "minimum_blocks": t.minimum_blocks,
        "grace_seconds": t.grace_seconds,
    }
    if t.bands:
        out["bands"] = [
            {"from": b.start.strftime("%H:%M"), "to": b.end.strftime("%H:%M"),
             "block_price": b.block_price}
            for b in t.bands
        ]
    if t.concessions:
        out["concessions"] = dict(t.concessions)
    return out


def parse_agent_config(raw: Mapping[str, object]) -> AgentConfig:
    """Validate a decoded agent.toml; raises ConfigError naming the first bad key."""
    _no_unknown(
        raw,
        {"cac_id", "data_dir", "timezone", "mqtt", "http", "stations", "tariff",
         "checkpoint_seconds", "voucher_valid_days", "health_interval_seconds",
         "resume_within_minutes", "content", "uplink", "catalogue", "require_shift",
         "printing", "impact"},
        "",
    )
    cac_id = _str(_req(raw, "cac_id", ""), "cac_id")
    if not CAC_ID_RE.fullmatch(cac_id):
        raise ConfigError("cac_id", f"must match [a-z0-9-]{{3,64}}, got {cac_id!r}")
    data_dir = Path(_str(_req(raw, "data_dir", ""), "data_dir"))
    tzname = _str(_req(raw, "timezone", ""), "timezone")
    try:
        ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a zoneinfo directory name such as "Africa" raises IsADirectoryError
        raise ConfigError("timezone", f"unknown IANA time zone {tzname!r}") from None

    mqtt = parse_mqtt(_req(raw, "mqtt", ""), keepalive=False, nonempty=False)

    h = _table(_req(raw, "http", ""), "http")
    _no_unknown(h, {"host", "port"}, "http")
    http = HttpConfig(
        host=_str(_req(h, "host", "http"), "http.host"),
        port=_check_int("http.port", _req(h, "port", "http"), 0, 65535),
    )

    st_raw = _req(raw, "stations", "")
    if not isinstance(st_raw, list) or not st_raw:
        raise ConfigError("stations", "must be a non-empty array of tables ([[stations]])")
    stations: list[Station] = []
    seen_ids: set[str] = set()
    seen_tokens: set[str] = set()
    for i, s in enumerate(st_raw):
        key = f"stations[{i}]"
        st = _table(s, key)
        _no_unknown(st, {"id", "token"}, key)
        sid = _str(_req(st, "id", key), f"{key}.id")
        if not STATION_ID_RE.fullmatch(sid):
            raise ConfigError(f"{key}.id", f"must match [a-z0-9-]{{1,32}}, got {sid!r}")
        token = _str(_req(st, "token", key), f"{key}.token")
        if len(token) < 16:
            raise ConfigError(f"{key}.token", "must be at least 16 characters")
        if sid in seen_ids:
            raise ConfigError(f"{key}.id", f"duplicate station id {sid!r}")
        if token in seen_tokens:
            raise ConfigError(f"{key}.token", "two stations share a token")
        seen_ids.add(sid)
        seen_tokens.add(token)
        stations.append(Station(sid, token))

    return AgentConfig(
        cac_id=cac_id,
        data_dir=data_dir,
        timezone=tzname,
        mqtt=mqtt,
        http=http,
        stations=tuple(stations),
        tariff=parse_tariff(_req(raw, "tariff", "")),
        checkpoint_seconds=_check_int(
            "checkpoint_seconds", raw.get("checkpoint_seconds", DEFAULT_CHECKPOINT_SECONDS),
            1, 3600),
        voucher_valid_days=_check_int(
            "voucher_valid_days", raw.get("voucher_valid_days", DEFAULT_VOUCHER_VALID_DAYS),
            1, 3660),
        health_interval_seconds=_check_int(
            "health_interval_seconds",
            raw.get("health_interval_seconds", DEFAULT_HEALTH_INTERVAL_SECONDS), 1, 3600),
        resume_within_minutes=_check_int(
            "resume_within_minutes",
            raw.get("resume_within_minutes", DEFAULT_RESUME_WITHIN_MINUTES), 0,
            MAX_RESUME_WITHIN_MINUTES),
        content=parse_content(raw.get("content", {}), default_ca=mqtt.ca_file),
        uplink=parse_uplink(raw.get("uplink", {})),
        catalogue=parse_catalogue(raw.get("catalogue", [])),
        require_shift=_bool(raw.get("require_shift", False), "require_shift"),
        printing=parse_printing(raw.get("printing", {})),
        impact=parse_impact(raw.get("impact", {})),
    )


def _bool(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false, got {type(value).__name__}")
    return value


def _currency(value: object, key: str) -> str:
    """Three capital letters (ISO 4217), as the hub's wire schema accepts (issue 16)."""
    text = _str(value, key)
    if not re.fullmatch(r"[A-Z]{3}", text):
        raise ConfigError(key, f"must be 3 capital letters (ISO 4217, e.g. MAD), got {text!r}")
    return text


def parse_content(raw: object, default_ca: Path | None = None) -> ContentConfig:
    """The optional ``[content]`` table (an https ``hub_url`` is checked against
    ``default_ca``, the broker's CA, which the hub's certificate comes from)."""
    c = _table(raw, "content")
    _no_unknown(c, {"hub_url", "quota_mb", "reserve_mb", "window", "max_kbps",
                    "poll_seconds", "pinned", "signing_key"}, "content")
    signing_key = None
    if "signing_key" in c:
        signing_key = _str(c["signing_key"], "content.signing_key")
        try:
            load_public(signing_key)
        except SigningError as exc:
            raise ConfigError("content.signing_key", str(exc)) from None
    hub_url = None
    if "hub_url" in c:
        hub_url = _str(c["hub_url"], "content.hub_url").rstrip("/")
        if not re.fullmatch(r"https?://[^/\s?#]+(/[^\s?#]*)?", hub_url):
            raise ConfigError("content.hub_url", f"must be http(s)://HOST:PORT, got {hub_url!r}")
    window = None
    if "window" in c:
        w = _str(c["window"], "content.window")
        start, sep, end = w.partition("-")
        if not sep:
            raise ConfigError("content.window", f"must be HH:MM-HH:MM local time, got {w!r}")
        window = (_hhmm(start, "content.window"), _hhmm(end, "content.window"))
    pinned = c.get("pinned", [])
    if not isinstance(pinned, list) or not all(
            isinstance(p, str) and re.fullmatch(r"[a-z0-9-]{1,64}", p) for p in pinned):
        raise ConfigError("content.pinned", "must be a list of package ids ([a-z0-9-]{1,64})")
    quota = _check_int("content.quota_mb", c.get("quota_mb", 2048), 1, 10**7)
    return ContentConfig(
        hub_url=hub_url,
        quota_mb=quota,
        reserve_mb=_check_int("content.reserve_mb", c.get("reserve_mb", 250), 0, 10**7),
        window=window,
        max_kbps=_check_int("content.max_kbps", c.get("max_kbps", 0), 0, 10**8),
        poll_seconds=_check_int("content.poll_seconds", c.get("poll_seconds", 300), 1, 7 * 86400),
        pinned=tuple(pinned),
        signing_key=signing_key,
        ca_file=default_ca,
    )


def load_agent_config(path: Path) -> AgentConfig:
    """Read and validate a agent.toml file."""
    return parse_agent_config(read_config_toml(path))
