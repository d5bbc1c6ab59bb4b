"""Wire payloads a CAC would send, for the hub's tests (plain functions, no fixtures).

Records are made by the agent's own code, so they are exactly what an agent sends: the
session record of ``agent.meter.session.ClosedSession``, numbered and stamped by the
ledger's ``stamp`` (UTC times, the CAC's ``tz``), converted by the reporter's
``wire.messages.record_from_dict``. Times are UTC (``+00:00``), as the agent writes them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.ledger import stamp
from agent.meter.session import ClosedSession, EndReason
from hub.config import HubConfig, parse_hub_config
from wire.messages import (
    Health,
    Record,
    SessionRecord,
    StationHealth,
    Status,
    Usage,
    VoidRecord,
    VoucherSaleRecord,
    encode,
    record_from_dict,
)

CAC = "ma-oriental-oujda-001"
OTHER = "ma-oriental-berkane-002"
TZ = ZoneInfo("Africa/Casablanca")  # 1 May 2024: UTC+1, so 09:00Z is 10:00 local
AT = "2024-05-01T09:00:00+00:00"
_ENDED = datetime.fromisoformat("2024-05-01T08:20:00+00:00")


def session(seq: int, cac_id: str = CAC, *, id_: str | None = None, fee: int = 200,
            station: str = "s1") -> SessionRecord:
    """A 20-minute cash session that ended at 08:20Z (09:20 local), as the agent records it."""
    closed = ClosedSession(
        id=id_ or f"{cac_id}-rec-{seq}", station=station,
        started_at=_ENDED - timedelta(minutes=20), ended_at=_ENDED, billed_seconds=1200,
        fee=fee, currency="MAD", category=None, voucher_id=None, operator="amina",
        minutes=None, end_reason=EndReason("operator"))
    # as agent/usecases/sessions.py hands it to the ledger
    rec = record_from_dict(stamp({**closed.to_record(), "at": _ENDED.isoformat()}, seq,
                                 cac_id, TZ))
    assert isinstance(rec, SessionRecord)
    return rec


def voucher_sale(seq: int, cac_id: str = CAC) -> VoucherSaleRecord:
    """A 60-minute voucher sold at ``AT``, in the shape of agent/usecases/vouchers.py."""
    sold = datetime.fromisoformat(AT)
    rec = record_from_dict(stamp({
        "type": "voucher_sale", "id": f"{cac_id}-rec-{seq}", "at": sold.isoformat(),
        "minutes": 60, "price": 800, "currency": "MAD", "category": None,
        "expires_at": (sold + timedelta(days=30)).isoformat(), "operator": "amina"},
        seq, cac_id, TZ))
    assert isinstance(rec, VoucherSaleRecord)
    return rec


def void(seq: int, ref: str, amount: int, cac_id: str = CAC) -> VoidRecord:
    """A voucher void at 11:00Z (12:00 local), in the shape of agent/usecases/vouchers.py."""
    rec = record_from_dict(stamp({
        "type": "void", "id": f"{cac_id}-void-{seq}", "at": "2024-05-01T11:00:00+00:00",
        "ref": ref, "amount": amount, "currency": "MAD", "minutes_voided": 60,
        "reason": "refund", "operator": "amina"}, seq, cac_id, TZ))
    assert isinstance(rec, VoidRecord)
    return rec


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
