"""What the use cases share: the active sessions and their tariffs, the ledger write."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from agent.audit import AuditLog
from agent.clock import Clock
from agent.config import AgentConfig, ConfigError, parse_tariff, tariff_to_dict
from agent.errors import DomainError
from agent.ledger import Ledger, LedgerError
from agent.meter.session import Session
from agent.meter.tariff import Tariff

log = logging.getLogger(__name__)


def new_id() -> str:
    return uuid.uuid4().hex


def storage_error(what: str, exc: OSError) -> DomainError:
    return DomainError("storage_error",
                       f"{what} could not be written ({exc.strerror or exc})")


class AgentState:
    """The in-memory view of the agent, kept in step with its ledger."""

    def __init__(self, config: AgentConfig, ledger: Ledger, clock: Clock) -> None:
        self.config = config
        self.ledger = ledger
        self.clock = clock
        self.tz = config.tz
        self.state_dir = ledger.data_dir
        self.audit = AuditLog(self.state_dir / "audit", config.tz)
        self.tariff: Tariff = config.tariff  # in force for new sessions and vouchers
        self.tariff_info: dict[str, Any] = {"version": 0, "source": "config",
                                            "set_at": None, "set_by": None}
        self.sessions: dict[str, Session] = {}
        self.session_tariffs: dict[str, Tariff] = {}  # session id -> tariff it started under
        self.voucher_codes: dict[str, str] = {}  # session id -> code of the voucher paying
        self.locks: dict[str, dict[str, Any]] = {}
        # station -> (session id, station it moved to, monotonic reading): the old kiosk
        # tells the citizen where the session went instead of showing a receipt
        self.moves: dict[str, tuple[str, str, float]] = {}
        self.resumed: set[str] = set()  # sessions resumed at this start (the kiosk says so)
        self.station_seen: dict[str, float] = {}
        # set by the content cache: a cheap, thread-safe read of its sync status for health
        self.content_status: Callable[[], dict[str, Any]] | None = None
        self.last_checkpoint = clock.monotonic()

    # ---------------------------------------------------------------- ledger writes

    @contextlib.contextmanager
    def ledger_write(self) -> Iterator[None]:
        """Wrap a ledger write: on failure, make memory agree with what the ledger holds.

        A write can fail after it took effect (the directory fsync after the rename), so
        memory is rebuilt from the ledger instead of being assumed unchanged.
        """
        try:
            yield
        except LedgerError:
            raise
        except OSError as exc:
            log.exception("ledger write failed")
            with contextlib.suppress(Exception):
                self.reconcile()
            raise DomainError("storage_error",
                              f"the ledger could not be written ({exc.strerror or exc}); "
                              "check the disk") from None
        except BaseException:
            with contextlib.suppress(Exception):
                self.reconcile()
            raise

    def reconcile(self) -> None:
        stored = {cp["id"]: cp for cp in self.ledger.active_checkpoints()}
        mono = self.clock.monotonic()
        for sid, s in list(self.sessions.items()):
            cp = stored.get(sid)
            if cp is None:  # its close reached the ledger
                self.forget(sid)
            elif cp.get("state", "running") != s.state or cp["station"] != s.station:
                # its pause, resume or move reached the ledger
                self.sessions[sid] = Session.from_checkpoint(cp, mono, self.clock.now())
            elif cp["limit_seconds"] != s.limit_seconds:  # its extension reached the ledger
                self.sessions[sid] = replace(s, limit_seconds=cp["limit_seconds"])
        for sid, cp in stored.items():
            if sid not in self.sessions:  # its start reached the ledger
                self.sessions[sid] = Session.from_checkpoint(cp, mono, self.clock.now())
                self.session_tariffs[sid] = self.checkpoint_tariff(cp)
                if cp.get("voucher_code"):
                    self.voucher_codes[sid] = cp["voucher_code"]

    def forget(self, session_id: str) -> None:
        """Drop a closed session from memory."""
        self.sessions.pop(session_id, None)
        self.voucher_codes.pop(session_id, None)
        self.session_tariffs.pop(session_id, None)
        self.resumed.discard(session_id)

    def checkpoint_of(self, s: Session, mono: float) -> dict[str, Any]:
        cp = {**s.to_checkpoint(mono), "voucher_code": self.voucher_codes.get(s.id),
              "tariff": tariff_to_dict(self.tariff_of(s))}
        boot = self.clock.boot()  # measures the outage at the next start (agent.clock)
        if boot is not None:
            # the boot-time reading of this instant: ``mono`` may be a little in the past
            cp["boot_id"], cp["boot_seconds"] = boot[0], boot[1] - (self.clock.monotonic() - mono)
        return cp

    def tariff_of(self, s: Session) -> Tariff:
        """The tariff a session is billed with: the one in force when it started."""
        return self.session_tariffs.get(s.id, self.tariff)

    def checkpoint_tariff(self, cp: dict[str, Any]) -> Tariff:
        raw = cp.get("tariff")
        if raw is None:  # written before tariffs could change at run time
            return self.tariff
        try:
            return parse_tariff(raw)
        except ConfigError:
            log.exception("session %s: its stored tariff is unreadable; using the current one",
                          cp.get("id"))
            return self.tariff

    # ---------------------------------------------------------------- shared checks

    def require_station(self, station_id: str) -> None:
        if self.config.station(station_id) is None:
            raise DomainError("unknown_station", f"no station {station_id!r}")

    def require_unlocked(self, station_id: str) -> None:
        if station_id in self.locks:
            raise DomainError("station_locked",
                              f"station {station_id} is locked; unlock it first")

    def check_category(self, category: str | None) -> None:
        if category and category not in self.tariff.concessions:
            known = ", ".join(sorted(self.tariff.concessions)) or "none configured"
            raise DomainError("unknown_category",
                              f"unknown concession category {category!r} (known: {known})")

    def session_on(self, station_id: str) -> Session | None:
        for s in self.sessions.values():
            if s.station == station_id:
                return s
        return None

    def session_view(self, s: Session) -> dict[str, Any]:
        now = self.clock.monotonic()
        view: dict[str, Any] = {
            "id": s.id,
            "station": s.station,
            "started_at": s.started_at.isoformat(),
            "minutes": None if s.limit_seconds is None else s.limit_seconds // 60,
            "limit_seconds": s.limit_seconds,
            "open_ended": s.open_ended,
            "category": s.category,
            "paid_by": "voucher" if s.voucher_id else "cash",
            "operator": s.operator,
            "state": s.state,
            "pause_reason": s.pause_reason,
            "resumed": s.id in self.resumed,
            "profile": s.profile,  # CONTRACT §9b (None: not given, or skipped)
            "billed_seconds": s.billed_seconds(now),
            "remaining_seconds": s.remaining_seconds(now),
            "fee_so_far": s.fee_so_far(now, self.tariff_of(s), self.tz),
            "currency": self.tariff_of(s).currency,
        }
        # counter sales on its bill (CONTRACT §8): what the citizen pays at the end
        sales = sum(self.ledger.bill(s.id).values())
        view["sales_amount"] = sales
        view["total_so_far"] = int(view["fee_so_far"]) + sales
        return view

    # ---------------------------------------------------------------- audit

    def audit_action(self, actor: str, action: str, target: str | None = None,
                     **details: Any) -> None:
        """Append to the audit trail; a failure is logged loudly but never undoes the action
        (which the ledger already holds)."""
        try:
            self.audit.record(self.clock.now(), actor, action, target, **details)
        except OSError:
            log.exception("could not write the audit trail (%s %s %s)", actor, action, target)

    def audit_entries(self, since: datetime | None = None, until: datetime | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        return self.audit.entries(since, until, limit)
