"""Ledger test helpers shared by tests/agent/test_ledger*.py: records and sessions as the
agent's use cases make them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent.ledger import Ledger
from agent.meter.vouchers import Voucher, generate_code

CAC = "ma-oriental-oujda-001"
CASABLANCA = ZoneInfo("Africa/Casablanca")
T0 = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def reopen(led: Ledger) -> Ledger:
    led.close()
    return Ledger(led.data_dir, led.cac_id, led.tz)


def new_id() -> str:
    return uuid.uuid4().hex


def checkpoint(station: str, at: datetime = T0, sid: str | None = None,
               voucher_code: str | None = None, billed: int = 0) -> dict[str, Any]:
    return {"id": sid or new_id(), "station": station, "started_at": at.isoformat(),
            "limit_seconds": 3600, "category": None, "voucher_id": None, "operator": "amina",
            "billed_seconds": billed, "voucher_code": voucher_code}


def session_record(cp: dict[str, Any], billed: int = 600) -> dict[str, Any]:
    ended = datetime.fromisoformat(cp["started_at"]) + timedelta(seconds=billed)
    return {"type": "session", "id": cp["id"], "station": cp["station"],
            "started_at": cp["started_at"], "ended_at": ended.isoformat(),
            "billed_seconds": billed, "fee": 200, "currency": "MAD", "at": ended.isoformat()}


def run_session(led: Ledger, station: str = "s1", at: datetime = T0,
                billed: int = 600) -> dict[str, Any]:
    cp = checkpoint(station, at)
    led.start_session(cp)
    return led.close_session(session_record(cp, billed))


def voucher(sold_at: datetime = T0, minutes: int = 30, *, left: int | None = None,
            valid_days: int = 30, void: bool = False) -> dict[str, Any]:
    v = Voucher(code=generate_code(), cac_id=CAC, seconds_total=minutes * 60,
                seconds_left=minutes * 60 if left is None else left, price=200, category=None,
                sold_at=sold_at, expires_at=sold_at + timedelta(days=valid_days),
                sold_by="amina", void=void, void_reason="refund" if void else None)
    return v.to_dict()


def sale_record(v: dict[str, Any]) -> dict[str, Any]:
    return {"type": "voucher_sale", "id": new_id(), "at": v["sold_at"], "price": v["price"]}


def sell(led: Ledger, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    v = voucher(**kw)
    return v, led.sell_voucher(v, sale_record(v))


def void_record(ref: str, at: datetime = T0) -> dict[str, Any]:
    return {"type": "void", "id": new_id(), "at": at.isoformat(), "ref": ref, "amount": 200}


def all_seqs(led: Ledger) -> list[int]:
    return sorted(r["seq"] for r in led.records())
