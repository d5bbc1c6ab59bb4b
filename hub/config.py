"""Typed hub configuration (CONTRACT §2): strict, with errors that name the bad key.

Optional keys beyond the contract (all have defaults):

- ``shared_subscription = false``: spread usage/health over several hub workers with MQTT 5
  shared subscriptions (DESIGN: Scale). Needs ``worker_id``; workers on one machine share
  ``data_dir`` (SQLite serialises their writes).
- ``worker_id``: this worker's name; it makes the MQTT client id ``hub-{hub_id}-{worker_id}``.
- ``flush_seconds = 5``: how often fleet state (last health, last seen) is written to the store.
- ``[mqtt] tls``, ``ca_file``, ``keepalive``.
- ``[alarms]``: alarm thresholds (``AlarmConfig``; see hub/alarms.py).
- ``[dashboard]``: technician sessions, login lockout, command timeout (``DashboardConfig``).
- ``[http] tls_cert``, ``tls_key`` (HTTPS), ``metrics_public`` (CONTRACT §2).
- ``[store] url`` (CONTRACT §2, §9): ``postgresql://user:password@host:port/dbname``: usage,
  watermarks and fleet rows go to PostgreSQL (hub/pgstore.py), shared by the workers; the
  other tables stay in SQLite in ``data_dir``. Without it, everything is SQLite in data_dir.
- ``[reports] min_cell = 5``: the impact report (hub/impact.py) shows any count under it
  as ``"<min_cell>"``; 2..1000.
- ``[content] signing_key_file``: the Ed25519 private key (PEM) that signs the content
  catalogue and manifests (made by ``cac-provision init-hub``; CONTRACT §10).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.ids import CAC_ID_RE, STATION_ID_RE
from common.mqtt_config import DEFAULT_KEEPALIVE_SECONDS as DEFAULT_KEEPALIVE_SECONDS
from common.mqtt_config import MqttConfig as MqttConfig
from common.mqtt_config import parse_mqtt
from wire.config_check import ConfigError as ConfigError
from wire.config_check import check_int as _check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import read_config_toml, string
from wire.config_check import req as _req
from wire.config_check import table as _table

HUB_ID_RE = CAC_ID_RE  # the wire contract's id rule
WORKER_ID_RE = STATION_ID_RE

DEFAULT_OFFLINE_AFTER_SECONDS = 90
DEFAULT_FLUSH_SECONDS = 5


@dataclass(frozen=True)
class HttpConfig:
    host: str = "0.0.0.0"  # noqa: S104 - technicians reach the hub's dashboard over the network
    port: int = 8080
    tls_cert: Path | None = None  # both or neither: the hub serves HTTPS
    tls_key: Path | None = None
    metrics_public: bool = False  # True: /metrics answers without a token

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"


@dataclass(frozen=True)
class AlarmConfig:
    """``[alarms]``: when an alarm is raised (hub/alarms.py); 0 turns a rule off."""

    offline_minutes: int = 10
    disk_percent: int = 90
    temperature_c: int = 85
    backlog_records: int = 500
    backlog_samples: int = 10  # backlog grew at each of this many health samples in a row
    clock_skew_seconds: int = 300
    content_stale_hours: int = 48


@dataclass(frozen=True)
class DashboardConfig:
    """``[dashboard]``: technician logins and remote commands."""

    session_hours: int = 12
    login_failures: int = 5  # failed logins of one name before it is locked out
    lockout_minutes: int = 15
    command_timeout_seconds: int = 3600  # a command unanswered this long is "expired"


@dataclass(frozen=True)
class ReportsConfig:
    """``[reports]``: the impact report's suppression of small counts (hub/impact.py)."""

    min_cell: int = 5


_REPORTS_LIMITS = {"min_cell": (2, 1000)}
_ALARM_LIMITS = {"offline_minutes": (0, 7 * 24 * 60), "disk_percent": (0, 100),
                 "temperature_c": (0, 150), "backlog_records": (0, 10**9),
                 "backlog_samples": (0, 10_000), "clock_skew_seconds": (0, 10**7),
                 "content_stale_hours": (0, 24 * 365)}
_DASHBOARD_LIMITS = {"session_hours": (1, 24 * 30), "login_failures": (1, 1000),
                     "lockout_minutes": (1, 24 * 60),
                     "command_timeout_seconds": (10, 30 * 24 * 3600)}


def _int_table(raw: object, name: str, limits: dict[str, tuple[int, int]]) -> dict[str, int]:
    t = _table(raw, name)
    _no_unknown(t, set(limits), name)
    return {k: _check_int(f"{name}.{k}", v, *limits[k]) for k, v in t.items()}


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
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    dashboard: DashboardConfig = field(default_factory=DashboardConfig)
    signing_key_file: Path | None = None  # [content] signing_key_file: signs content
    store_url: str | None = None  # [store] url: PostgreSQL; None: SQLite in data_dir
    reports: ReportsConfig = field(default_factory=ReportsConfig)

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


def parse_hub_config(raw: Mapping[str, object]) -> HubConfig:
    """Validate a decoded hub.toml; raises ConfigError naming the first bad key."""
    _no_unknown(
        raw,
        {"hub_id", "data_dir", "offline_after_seconds", "mqtt", "http",
         "shared_subscription", "worker_id", "flush_seconds", "alarms", "dashboard",
         "content", "store", "reports"},
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

    mqtt = parse_mqtt(_req(raw, "mqtt", ""), keepalive=True, nonempty=True)
    h = _table(_req(raw, "http", ""), "http")
    _no_unknown(h, {"host", "port", "tls_cert", "tls_key", "metrics_public"}, "http")
    tls: dict[str, Path] = {}
    for key in ("tls_cert", "tls_key"):
        if key in h:
            tls[key] = Path(_str(h[key], f"http.{key}"))
            if not tls[key].is_file():
                raise ConfigError(f"http.{key}", f"no such file {str(tls[key])!r}")
    if len(tls) == 1:
        raise ConfigError("http.tls_key" if "tls_cert" in tls else "http.tls_cert",
                          "tls_cert and tls_key must be given together")
    http = HttpConfig(
        host=_str(_req(h, "host", "http"), "http.host"),
        port=_check_int("http.port", _req(h, "port", "http"), 0, 65535),
        tls_cert=tls.get("tls_cert"),
        tls_key=tls.get("tls_key"),
        metrics_public=_bool(h.get("metrics_public", False), "http.metrics_public"),
    )
    c = _table(raw.get("content", {}), "content")
    _no_unknown(c, {"signing_key_file"}, "content")
    signing_key_file: Path | None = None
    if "signing_key_file" in c:
        signing_key_file = Path(_str(c["signing_key_file"], "content.signing_key_file"))
        if not signing_key_file.is_file():
            raise ConfigError("content.signing_key_file",
                              f"no such file {str(signing_key_file)!r}")
    st = _table(raw.get("store", {}), "store")
    _no_unknown(st, {"url"}, "store")
    store_url: str | None = None
    if "url" in st:
        store_url = _str(st["url"], "store.url")
        if not store_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError("store.url", "must be a postgresql://user:password@host:port/"
                                           "dbname url (leave [store] out for SQLite)")
    return HubConfig(
        store_url=store_url,
        signing_key_file=signing_key_file,
        hub_id=hub_id,
        data_dir=data_dir,
        mqtt=mqtt,
        http=http,
        offline_after_seconds=offline_after,
        shared_subscription=shared,
        worker_id=worker_id,
        flush_seconds=_check_int("flush_seconds",
                                 raw.get("flush_seconds", DEFAULT_FLUSH_SECONDS), 1, 3600),
        alarms=AlarmConfig(**_int_table(raw.get("alarms", {}), "alarms", _ALARM_LIMITS)),
        dashboard=DashboardConfig(**_int_table(raw.get("dashboard", {}), "dashboard",
                                               _DASHBOARD_LIMITS)),
        reports=ReportsConfig(**_int_table(raw.get("reports", {}), "reports",
                                           _REPORTS_LIMITS)),
    )


def load_hub_config(path: Path) -> HubConfig:
    """Read and validate a hub.toml file."""
    return parse_hub_config(read_config_toml(path))
