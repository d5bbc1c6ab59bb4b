"""``AgentService``: the agent's use cases composed, the one object the edges talk to.

The API, the console, the hub's commands and the content cache call this facade; each
method hands over to one use case in ``agent.usecases`` (sessions, vouchers, stations,
tariffs, accounts) and raises ``agent.errors.DomainError``. It is synchronous and confined
to one thread (the HTTP layer runs every call on a single-worker executor).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.audit import AuditLog
from agent.auth import TokenStore
from agent.clock import Clock
from agent.config import AgentConfig
from agent.content_use import ContentUse
from agent.content_use import records as content_records
from agent.errors import DomainError
from agent.ledger import Ledger
from agent.meter.session import EndReason, Session
from agent.meter.stations import STATION_ONLINE_SECONDS
from agent.meter.tariff import Tariff
from agent.operators import OperatorStore
from agent.ratelimit import FailureLimiter
from agent.usecases.accounts import OPERATOR_TOKEN_TTL, Accounts, Principal
from agent.usecases.sessions import Sessions
from agent.usecases.state import AgentState, new_id
from agent.usecases.stations import Stations
from agent.usecases.tariffs import Tariffs
from agent.usecases.till import Till
from agent.usecases.vouchers import MAX_VOUCHER_MINUTES, Vouchers

__all__ = ["MAX_VOUCHER_MINUTES", "OPERATOR_TOKEN_TTL", "STATION_ONLINE_SECONDS",
           "AgentService", "DomainError", "Principal"]


class AgentService:
    def __init__(self, config: AgentConfig, ledger: Ledger, operators: OperatorStore,
                 clock: Clock) -> None:
        self.state = AgentState(config, ledger, clock)
        self.tariffs = Tariffs(self.state)
        self.session_cases = Sessions(self.state)
        self.vouchers = Vouchers(self.state, self.session_cases)
        self.station_cases = Stations(self.state, self.session_cases)
        self.accounts = Accounts(self.state, operators)
        self.till = Till(self.state)
        self.content_use = ContentUse()  # CONTRACT §9b: opens per package and day
        self._content_day = ""
        self._next_content_flush = clock.monotonic() + config.impact.flush_minutes * 60

    # ---------------------------------------------------------------- shared state

    @property
    def config(self) -> AgentConfig:
        return self.state.config

    @property
    def ledger(self) -> Ledger:
        return self.state.ledger

    @property
    def operators(self) -> OperatorStore:
        return self.accounts.operators

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def tz(self) -> ZoneInfo:
        return self.state.tz

    @property
    def state_dir(self) -> Path:
        return self.state.state_dir

    @property
    def audit(self) -> AuditLog:
        return self.state.audit

    @property
    def tariff(self) -> Tariff:
        return self.state.tariff

    @property
    def tariff_info(self) -> dict[str, Any]:
        return self.state.tariff_info

    @property
    def sessions(self) -> dict[str, Session]:
        return self.state.sessions

    @property
    def locks(self) -> dict[str, dict[str, Any]]:
        return self.state.locks

    @property
    def tokens(self) -> TokenStore:
        return self.accounts.tokens

    @property
    def limiter(self) -> FailureLimiter:
        return self.vouchers.limiter

    @property
    def content_status(self) -> Callable[[], dict[str, Any]] | None:
        return self.state.content_status

    @content_status.setter
    def content_status(self, status: Callable[[], dict[str, Any]] | None) -> None:
        self.state.content_status = status

    # ---------------------------------------------------------------- sessions

    def recover(self) -> list[dict[str, Any]]:
        return self.session_cases.recover()

    def tick(self) -> list[dict[str, Any]]:
        closed = self.session_cases.tick()
        day = self.today()
        if self._content_day and day != self._content_day:
            self.flush_content_use()  # the day changed: yesterday's counts go now
        elif self.clock.monotonic() >= self._next_content_flush:
            self.flush_content_use()
        self._content_day = day
        return closed

    def today(self) -> str:
        """The CAC's local date."""
        return self.clock.now().astimezone(self.config.tz).date().isoformat()

    def note_content_open(self, package: str, path: str) -> None:
        """A citizen opened a page of ``package`` (any thread; no search query, no who)."""
        self.content_use.note(self.today(), package, path)

    def flush_content_use(self) -> list[dict[str, Any]]:
        """The counts since the last flush as content_use records (one per day), in one
        ledger write; counts are put back when the write fails (none lost, none twice)."""
        self._next_content_flush = (self.clock.monotonic()
                                    + self.config.impact.flush_minutes * 60)
        taken = self.content_use.take()
        if not taken:
            return []
        try:
            with self.state.ledger_write():
                return self.ledger.add_records(
                    content_records(taken, self.clock.now().isoformat(), new_id))
        except BaseException:
            self.content_use.put_back(taken)
            raise

    def checkpoint(self) -> None:
        self.session_cases.checkpoint()

    def session_view(self, s: Session) -> dict[str, Any]:
        return self.state.session_view(s)

    def active_sessions(self) -> list[dict[str, Any]]:
        return self.session_cases.active()

    def start_session(self, station_id: str, minutes: int | None, category: str | None,
                      operator: str, profile: dict[str, str] | None = None) -> dict[str, Any]:
        self.till.require_shift()
        return self.session_cases.start(station_id, minutes, category, operator, profile)

    def set_profile(self, station_id: str, profile: dict[str, str] | None) -> dict[str, Any]:
        return self.session_cases.set_profile(station_id, profile)

    def extend(self, session_id: str, minutes: int, operator: str) -> dict[str, Any]:
        return self.session_cases.extend(session_id, minutes, operator)

    def end(self, session_id: str, reason: EndReason,
            actor: str | None = None) -> dict[str, Any]:
        return self.session_cases.end(session_id, reason, actor)

    def end_on_station(self, station_id: str, reason: EndReason,
                       actor: str | None = None) -> dict[str, Any]:
        return self.session_cases.end_on_station(station_id, reason, actor)

    def pause(self, session_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        return self.session_cases.pause(session_id, reason, actor)

    def resume(self, session_id: str, actor: str) -> dict[str, Any]:
        return self.session_cases.resume(session_id, actor)

    def move(self, session_id: str, station_id: str, actor: str) -> dict[str, Any]:
        return self.session_cases.move(session_id, station_id, actor)

    def pause_all(self, reason: str | None, actor: str) -> dict[str, Any]:
        return self.session_cases.pause_all(reason, actor)

    def resume_all(self, actor: str) -> dict[str, Any]:
        return self.session_cases.resume_all(actor)

    # ---------------------------------------------------------------- vouchers

    def sell_voucher(self, minutes: int, category: str | None, operator: str) -> dict[str, Any]:
        self.till.require_shift()
        return self.vouchers.sell(minutes, category, operator)

    def voucher_info(self, code_text: str) -> dict[str, Any]:
        return self.vouchers.info(code_text)

    def voucher_list(self) -> list[dict[str, Any]]:
        return self.vouchers.listing()

    def void_voucher(self, code_text: str, reason: str, operator: str) -> dict[str, Any]:
        return self.vouchers.void(code_text, reason, operator)

    def redeem(self, station_id: str, code_text: str,
               profile: dict[str, str] | None = None) -> dict[str, Any]:
        return self.vouchers.redeem(station_id, code_text, profile)

    # ---------------------------------------------------------------- stations

    def station_for_token(self, token: str, station_id: str) -> str:
        return self.station_cases.for_token(token, station_id)

    def stations(self) -> list[dict[str, Any]]:
        return self.station_cases.all()

    def station_view(self, station_id: str) -> dict[str, Any]:
        return self.station_cases.view(station_id)

    def station_state(self, station_id: str) -> dict[str, Any]:
        return self.station_cases.station_state(station_id)

    def station_session(self, station_id: str) -> dict[str, Any]:
        return self.station_cases.session_of(station_id)

    def health_snapshot(self) -> dict[str, Any]:
        return self.station_cases.health_snapshot()

    def lock_station(self, station_id: str, actor: str, reason: str = "") -> dict[str, Any]:
        return self.station_cases.lock(station_id, actor, reason)

    def unlock_station(self, station_id: str, actor: str) -> dict[str, Any]:
        return self.station_cases.unlock(station_id, actor)

    def send_message(self, station_id: str | None, text: str, seconds: int | None,
                     actor: str) -> list[dict[str, Any]]:
        return self.station_cases.send_message(station_id, text, seconds, actor)

    # ---------------------------------------------------------------- tariff

    def tariff_view(self) -> dict[str, Any]:
        return self.tariffs.view()

    def set_tariff(self, raw: object, actor: str) -> dict[str, Any]:
        return self.tariffs.set(raw, actor)

    def quote(self, minutes: int, category: str | None, start: datetime | None = None) -> int:
        return self.tariffs.quote(minutes, category, start)

    # ---------------------------------------------------------------- the till (§8)

    def catalogue(self) -> dict[str, Any]:
        return self.till.catalogue()

    def set_catalogue(self, raw: object, actor: str) -> dict[str, Any]:
        return self.till.set_catalogue(raw, actor)

    def sell(self, item: str, quantity: int, session_id: str | None, category: str | None,
             operator: str) -> dict[str, Any]:
        self.session_cases.tick()  # a session whose time is up is closed, not billed
        return self.till.sell(item, quantity, session_id, category, operator)

    def void_sale(self, sale_id: str, reason: str, operator: str) -> dict[str, Any]:
        return self.till.void(sale_id, reason, operator)

    def print_jobs(self) -> list[dict[str, Any]]:
        return self.till.print_jobs()

    def station_print_jobs(self, station_id: str) -> list[dict[str, Any]]:
        return self.till.station_print_jobs(station_id)

    def release_print(self, job_id: str, operator: str) -> dict[str, Any]:
        self.session_cases.tick()
        return self.till.release(job_id, operator)

    def cancel_print(self, job_id: str, operator: str) -> dict[str, Any]:
        return self.till.cancel_print(job_id, operator)

    def recent_sales(self) -> list[dict[str, Any]]:
        return self.till.recent_sales()

    def open_shift(self, opening_float: int, operator: str) -> dict[str, Any]:
        return self.till.open_shift(opening_float, operator)

    def current_shift(self) -> dict[str, Any]:
        return self.till.current_shift()

    def close_shift(self, counted_cash: int, operator: str) -> dict[str, Any]:
        return self.till.close_shift(counted_cash, operator)

    # ---------------------------------------------------------------- operators, audit

    def login(self, name: str, password: str) -> dict[str, Any]:
        return self.accounts.login(name, password)

    def login_from(self, name: str, password: str, client: str | None = None) -> dict[str, Any]:
        return self.accounts.login_from(name, password, client)

    def logout(self, token: str) -> None:
        self.accounts.logout(token)

    def operator_for_token(self, token: str) -> Principal:
        return self.accounts.operator_for_token(token)

    def operator_list(self) -> list[dict[str, Any]]:
        return self.accounts.listing()

    def operator_save(self, name: str, role: str, password: str, actor: str) -> None:
        self.accounts.save(name, role, password, actor)

    def operator_set_role(self, name: str, role: str, actor: str) -> None:
        self.accounts.set_role(name, role, actor)

    def operator_set_active(self, name: str, active: bool, actor: str) -> None:
        self.accounts.set_active(name, active, actor)

    def audit_action(self, actor: str, action: str, target: str | None = None,
                     **details: Any) -> None:
        self.state.audit_action(actor, action, target, **details)

    def audit_entries(self, since: datetime | None = None, until: datetime | None = None,
                      limit: int = 1000) -> list[dict[str, Any]]:
        return self.state.audit_entries(since, until, limit)
