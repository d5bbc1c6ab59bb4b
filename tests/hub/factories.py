"""Wire payloads a CAC would send, for the hub's tests (plain functions, no fixtures)."""

from __future__ import annotations

from typing import Any, Literal

from hub.config import HubConfig, parse_hub_config
from wire.messages import (
    Health,
    Record,
    SessionRecord,
    StationHealth,
    Status,
    Usage,
    VoucherSaleRecord,
    encode,
)

CAC = "ma-oriental-oujda-001"
OTHER = "ma-oriental-berkane-002"
AT = "2024-05-01T10:00:00+01:00"


def session(seq: int, cac_id: str = CAC, *, id_: str | None = None, fee: int = 200,
            station: str = "s1") -> SessionRecord:
    return SessionRecord(
        id=id_ or f"{cac_id}-rec-{seq}", seq=seq, cac_id=cac_id, at=AT, station=station,
        started_at="2024-05-01T09:00:00+01:00", ended_at="2024-05-01T09:20:00+01:00",
        billed_seconds=1200, fee=fee, currency="MAD")


def voucher_sale(seq: int, cac_id: str = CAC) -> VoucherSaleRecord:
    return VoucherSaleRecord(id=f"{cac_id}-rec-{seq}", seq=seq, cac_id=cac_id, at=AT,
                             minutes=60, price=800, currency="MAD")


def usage(*records: Record) -> bytes:
    return encode(Usage(records=list(records)))


def status(state: Literal["online", "offline"] = "online", boot_id: str = "boot-1",
           version: str = "0.1.0") -> bytes:
    return encode(Status(state=state, boot_id=boot_id, version=version, at=AT))


def health_msg(backlog: int = 0, boot_id: str = "boot-1") -> Health:
    return Health(
        at=AT, boot_id=boot_id, version="0.1.0", uptime_s=120.0, cpu_percent=12.5,
        load=[0.1, 0.2, 0.3], mem_percent=40.0, mem_total=4_000_000_000, disk_percent=55.0,
        disk_free=10_000_000_000, disk_total=32_000_000_000, temps={"cpu": 51.0},
        backlog=backlog, stations=[StationHealth(id="s1", online=True, last_seen_s=3.0)])


def health(backlog: int = 0, boot_id: str = "boot-1") -> bytes:
    return encode(health_msg(backlog, boot_id))


def hub_config_dict(data_dir: str, mqtt_port: int = 1883, http_port: int = 0,
                    **extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "hub_id": extra.pop("hub_id", "hub-oriental"),
        "data_dir": data_dir,
        "offline_after_seconds": 90,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "http": {"host": "127.0.0.1", "port": http_port},
    }
    raw.update(extra)
    return raw


def hub_config(data_dir: str, mqtt_port: int = 1883, http_port: int = 0,
               **extra: Any) -> HubConfig:
    return parse_hub_config(hub_config_dict(data_dir, mqtt_port, http_port, **extra))
