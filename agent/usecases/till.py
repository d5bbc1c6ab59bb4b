"""The till (CONTRACT §8): the catalogue in force, counter sales and their voids, shifts.

- The catalogue is the config file's ``[[catalogue]]``, or the one last set at run time
  (console, API, the hub's ``set_catalogue``), stored in ``catalogue.json`` with a hash of
  the file's catalogue: a later edit of the file wins, as for the tariff.
- A sale is cash now, or goes on a running session's bill (``session``): the ledger puts it
  on the bill in the same write, and the session's closed record carries ``sales``,
  ``sales_amount`` and ``total``. A concession applies as to fees (§3 step 5); a sale onto a
  session takes the session's category unless it names one.
- A void (manager, reason) is a ``sale_void`` record with a negative amount; a sale still
  on a running bill leaves the bill (``cash: false``), otherwise money goes back.
- A shift is opened with a float and closed with counted cash; its ``cash_in`` is read from
  the ledger's records since it opened: standalone sales, voucher sales, cash sessions'
  totals; ``expected_cash = opening_float + cash_in - cash voids``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

from agent.config import ConfigError
from agent.errors import DomainError
from agent.ledger import LedgerError
from agent.meter.tariff import UnknownCategory, concession_percent
from agent.printing import Cups, HeldJob, PrintUnavailable
from agent.storage import atomic_write_bytes
from agent.usecases.state import AgentState, new_id, storage_error
from wire.catalogue import (
    MAX_QUANTITY,
    CatalogueItem,
    catalogue_to_list,
    parse_catalogue,
    sale_amount,
)

log = logging.getLogger(__name__)

CATALOGUE_FILE = "catalogue.json"
MAX_CASH = 10**9  # centimes: 10 million MAD


class Till:
    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.items: tuple[CatalogueItem, ...] = state.config.catalogue
        self.cups = Cups(state.config.printing)
        self.info: dict[str, Any] = {"version": 0, "source": "config", "set_at": None,
                                     "set_by": None}
        self._load()

    # ---------------------------------------------------------------- catalogue

    def _config_hash(self) -> str:
        raw = json.dumps(catalogue_to_list(self.state.config.catalogue), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()

    def _load(self) -> None:
        path = self.state.state_dir / CATALOGUE_FILE
        try:
            stored = json.loads(path.read_bytes())
            items = parse_catalogue(stored["catalogue"])
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError, ConfigError):
            log.exception("%s is unreadable; using the catalogue of the config file", path)
            return
        version = int(stored.get("version", 1))
        if stored.get("config_hash") != self._config_hash():
            log.warning("the config file's catalogue changed since it was last edited at run "
                        "time; the config file's catalogue wins")
            self.info["version"] = version
            return
        self.items = items
        self.info = {"version": version, "source": "edited", "set_at": stored.get("set_at"),
                     "set_by": stored.get("set_by")}

    def catalogue(self) -> dict[str, Any]:
        return {"catalogue": catalogue_to_list(self.items), **self.info}

    def set_catalogue(self, raw: object, actor: str) -> dict[str, Any]:
        """Replace the catalogue (a list, or ``{"catalogue": [...]}``); bad input changes
        nothing and names the key (``bad_catalogue``)."""
        if isinstance(raw, dict) and set(raw) <= {"catalogue", "version", "source", "set_at",
                                                  "set_by"} and "catalogue" in raw:
            raw = raw["catalogue"]
        try:
            items = parse_catalogue(raw)
        except ConfigError as exc:
            raise DomainError("bad_catalogue", str(exc)) from None
        st = self.state
        version = int(self.info["version"]) + 1
        now = st.clock.now().isoformat()
        stored = {"version": version, "catalogue": catalogue_to_list(items), "set_at": now,
                  "set_by": actor, "config_hash": self._config_hash()}
        try:
            atomic_write_bytes(st.state_dir / CATALOGUE_FILE,
                               json.dumps(stored, indent=1, ensure_ascii=False).encode())
        except OSError as exc:
            raise storage_error("the catalogue", exc) from None
        old = catalogue_to_list(self.items)
        self.items = items
        self.info = {"version": version, "source": "edited", "set_at": now, "set_by": actor}
        st.audit_action(actor, "catalogue.set", f"v{version}", old=old, new=stored["catalogue"])
        log.info("catalogue version %d set by %s (%d items)", version, actor, len(items))
        return self.catalogue()

    def item(self, item_id: str) -> CatalogueItem:
        for it in self.items:
            if it.id == item_id:
                return it
        known = ", ".join(it.id for it in self.items) or "none"
        raise DomainError("unknown_item", f"item: no catalogue item {item_id!r} (known: {known})")

    # ---------------------------------------------------------------- sales

    def require_shift(self) -> None:
        """Refuse taking money outside a shift when ``require_shift = true``."""
        if self.state.config.require_shift and self.state.ledger.open_shift_doc() is None:
            raise DomainError("no_open_shift", "no shift is open: open the till first "
                                               "(require_shift = true)")

    def sell(self, item_id: str, quantity: int, session_id: str | None,
             category: str | None, operator: str, print_job: str | None = None
             ) -> dict[str, Any]:
        st = self.state
        it = self.item(item_id)
        if not 1 <= quantity <= MAX_QUANTITY:
            raise DomainError("bad_quantity", f"quantity: must be 1 to {MAX_QUANTITY}")
        self.require_shift()
        if session_id is not None:
            s = st.sessions.get(session_id)
            if s is None:
                raise DomainError("unknown_session",
                                  f"session: no running session {session_id!r}")
            if category is None:
                category = s.category
        try:
            pct = concession_percent(st.tariff, category)
        except UnknownCategory as exc:
            raise DomainError("unknown_category", f"category: {exc}") from None
        shift = st.ledger.open_shift_doc()
        record = {"type": "sale", "id": new_id(), "at": st.clock.now().isoformat(),
                  "item": it.id, "quantity": quantity, "unit_price": it.price,
                  "amount": sale_amount(it.price, quantity, pct),
                  "currency": st.tariff.currency, "unit": it.unit, "session": session_id,
                  "category": category or None, "operator": operator,
                  "shift": None if shift is None else shift["id"]}
        if print_job is not None:
            record["print_job"] = print_job
        try:
            with st.ledger_write():
                stored = st.ledger.add_sale(record)
        except LedgerError as exc:
            raise DomainError("unknown_session", f"session: {exc}") from None
        st.audit_action(f"operator:{operator}", "sale", str(record["id"]), item=it.id,
                        quantity=quantity, amount=record["amount"], session=session_id)
        return stored

    def void(self, sale_id: str, reason: str, operator: str) -> dict[str, Any]:
        st = self.state
        sale = st.ledger.find_record(sale_id)
        if sale is None:
            raise DomainError("unknown_sale", f"id: no sale {sale_id!r}")
        if sale.get("type") == "sale_void":
            raise DomainError("cannot_void", "id: this is a void; a void cannot be voided")
        if sale.get("type") != "sale":
            raise DomainError("unknown_sale", f"id: {sale_id!r} is not a counter sale")
        for rec in st.ledger.records(st.ledger.local_day(sale["at"])):
            if rec.get("type") == "sale_void" and rec.get("ref") == sale_id:
                raise DomainError("cannot_void", "id: this sale is already voided")
        record = {"type": "sale_void", "id": new_id(), "at": st.clock.now().isoformat(),
                  "ref": sale_id, "item": sale["item"], "quantity": int(sale["quantity"]),
                  "amount": -int(sale["amount"]), "currency": sale["currency"],
                  "reason": reason, "session": sale.get("session"), "operator": operator}
        with st.ledger_write():
            stored = st.ledger.void_sale(record)
        st.audit_action(f"operator:{operator}", "sale.void", sale_id, reason=reason,
                        amount=record["amount"])
        return stored

    def recent_sales(self, limit: int = 50) -> list[dict[str, Any]]:
        """Today's sales (local day), newest first, each with ``voided``."""
        st = self.state
        today = st.clock.now().astimezone(st.tz).date()
        sales, voided = [], set()
        for rec in st.ledger.records(today, today):
            if rec.get("type") == "sale":
                sales.append(rec)
            elif rec.get("type") == "sale_void":
                voided.add(rec.get("ref"))
        sales.sort(key=lambda r: str(r["at"]), reverse=True)
        return [{**r, "voided": r["id"] in voided} for r in sales[:limit]]

    # ---------------------------------------------------------------- print release

    def _held(self) -> list[HeldJob]:
        if self.state.config.printing.cups is None:
            raise DomainError("printing_off", "printing is not configured here "
                                              "([printing] cups in agent.toml)")
        try:
            return self.cups.held({s.id for s in self.state.config.stations})
        except PrintUnavailable as exc:
            raise DomainError("print_unavailable", str(exc)) from None

    def print_jobs(self) -> list[dict[str, Any]]:
        return [j.view() for j in self._held()]

    def station_print_jobs(self, station_id: str) -> list[dict[str, Any]]:
        """A station's own held jobs with what they will cost, for the kiosk ("3 pages,
        3.00 MAD, collect at the counter")."""
        cfg = self.state.config.printing
        prices = {it.id: it.price for it in self.items}
        return [{**j.view(), "price": prices.get(cfg.color_item if j.color else cfg.bw_item, 0)
                 * j.pages, "currency": self.state.tariff.currency}
                for j in self._held() if j.station == station_id]

    def _job(self, job_id: str) -> HeldJob:
        job = next((j for j in self._held() if j.id == job_id), None)
        if job is None:
            raise DomainError("unknown_print_job",
                              f"id: no held print job {job_id!r} (unknown, or already "
                              "released or cancelled)")
        return job

    def release(self, job_id: str, operator: str) -> dict[str, Any]:
        """Charge the job's pages at the catalogue price (onto its station's running session
        when there is one, else a cash sale), then let CUPS print it."""
        st = self.state
        job = self._job(job_id)
        today = st.clock.now().astimezone(st.tz).date()
        if any(r.get("type") == "sale" and r.get("print_job") == job_id
               for r in st.ledger.records(today, today)):
            raise DomainError("cannot_void", f"id: print job {job_id} was already charged")
        cfg = st.config.printing
        item = cfg.color_item if job.color else cfg.bw_item
        running = st.session_on(job.station)
        sale = self.sell(item, job.pages, None if running is None else running.id, None,
                         operator, print_job=job_id)
        try:
            self.cups.release(job_id)
        except PrintUnavailable as exc:
            self.void(sale["id"], "the print job could not be released", operator)
            raise DomainError("print_unavailable", str(exc)) from None
        st.audit_action(f"operator:{operator}", "print.release", job_id, pages=job.pages,
                        color=job.color, sale=sale["id"])
        return {**sale, "station": job.station, "color": job.color}

    def cancel_print(self, job_id: str, operator: str) -> dict[str, Any]:
        job = self._job(job_id)
        try:
            self.cups.cancel(job.id)
        except PrintUnavailable as exc:
            raise DomainError("print_unavailable", str(exc)) from None
        self.state.audit_action(f"operator:{operator}", "print.cancel", job_id,
                                pages=job.pages, station=job.station)
        return {"id": job.id, "cancelled": True}

    # ---------------------------------------------------------------- shifts

    def open_shift(self, opening_float: int, operator: str) -> dict[str, Any]:
        st = self.state
        if st.ledger.open_shift_doc() is not None:
            raise DomainError("shift_open", "a shift is already open; close it first")
        shift = {"id": new_id(), "operator": operator, "opened_at": st.clock.now().isoformat(),
                 "opening_float": opening_float}
        try:
            with st.ledger_write():
                st.ledger.open_shift(shift)
        except LedgerError as exc:
            raise DomainError("shift_open", str(exc)) from None
        st.audit_action(f"operator:{operator}", "shift.open", str(shift["id"]),
                        opening_float=opening_float)
        return shift

    def current_shift(self) -> dict[str, Any]:
        shift = self.state.ledger.open_shift_doc()
        if shift is None:
            raise DomainError("no_open_shift", "no shift is open")
        return {**shift, **self._cash(shift), "currency": self.state.tariff.currency}

    def _cash(self, shift: dict[str, Any]) -> dict[str, int]:
        st = self.state
        since = datetime.fromisoformat(shift["opened_at"])
        cash_in = voids = 0
        for rec in st.ledger.records(st.ledger.local_day(shift["opened_at"])):
            if datetime.fromisoformat(rec["at"]) < since:
                continue
            cash_in += cash_taken(rec)
            voids += cash_refunded(rec)
        return {"cash_in": cash_in, "cash_voids": voids,
                "expected_cash": int(shift["opening_float"]) + cash_in - voids}

    def close_shift(self, counted_cash: int, operator: str) -> dict[str, Any]:
        st = self.state
        current = self.current_shift()
        now = st.clock.now().isoformat()
        record = {"type": "shift", "id": current["id"], "at": now,
                  "operator": current["operator"], "opened_at": current["opened_at"],
                  "closed_at": now, "opening_float": int(current["opening_float"]),
                  "cash_in": current["cash_in"], "cash_voids": current["cash_voids"],
                  "expected_cash": current["expected_cash"], "counted_cash": counted_cash,
                  "over_short": counted_cash - current["expected_cash"],
                  "currency": st.tariff.currency, "closed_by": operator}
        try:
            with st.ledger_write():
                stored = st.ledger.close_shift(record)
        except LedgerError as exc:
            raise DomainError("no_open_shift", str(exc)) from None
        st.audit_action(f"operator:{operator}", "shift.close", current["id"],
                        expected=record["expected_cash"], counted=counted_cash,
                        over_short=record["over_short"])
        return stored


def cash_taken(rec: dict[str, Any]) -> int:
    """The cash a ledger record brought into the till (CONTRACT §8)."""
    kind = rec.get("type")
    if kind == "sale" and rec.get("session") is None:
        return int(rec["amount"])
    if kind == "voucher_sale":
        return int(rec["price"])
    if kind == "session":
        return int(rec.get("total", rec["fee"]))
    return 0


def cash_refunded(rec: dict[str, Any]) -> int:
    """The cash a ledger record paid back over the counter (a positive number)."""
    if rec.get("type") == "void":
        return int(rec["amount"])
    if rec.get("type") == "sale_void" and rec.get("cash", True):
        return -int(rec["amount"])
    return 0
