"""Sessions: start, extend, pause, resume, move and end them, close the ones whose time is
up, checkpoint, and resume them after a restart (CONTRACT §7).

Every change is durable in the ledger before the call returns; memory changes only after
the ledger write succeeded (``AgentState.ledger_write``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from agent.errors import DomainError
from agent.meter.session import (
    EndReason,
    Session,
    checkpoint_instant,
    outage_seconds,
    resume_instant,
)
from agent.meter.tariff import Tariff, compute_fee
from agent.usecases.state import AgentState, new_id

log = logging.getLogger(__name__)

UNKNOWN_STATION = "unknown"  # the station of a damaged checkpoint that does not say


class Sessions:
    def __init__(self, state: AgentState) -> None:
        self.state = state

    # ---------------------------------------------------------------- lifecycle

    def recover(self) -> list[dict[str, Any]]:
        """At start: resume the sessions that an outage interrupted, if it lasted at most
        ``resume_within_minutes``; close the others as ``restart_recovery``, billed up to
        their last checkpoint. Returns the closed records."""
        st = self.state
        limit = st.config.resume_within_minutes * 60
        mono, now, boot = st.clock.monotonic(), st.clock.now(), st.clock.boot()
        closed: list[dict[str, Any]] = []
        resumed: list[Session] = []
        for cp in st.ledger.active_checkpoints():
            try:
                away = outage_seconds(cp, now, boot)
                at = resume_instant(cp, now, boot, away)
                session = Session.from_checkpoint(cp, mono, at)
                tariff = st.checkpoint_tariff(cp)
                session.fee_so_far(mono, tariff, st.tz)  # its category is one it knows
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                closed.append(self._close_unreadable(cp, exc))
                continue
            why = ("resume_within_minutes = 0" if limit == 0
                   else f"stopped {away:.0f} s, over {limit} s" if away > limit
                   else "its station is no longer configured"
                   if st.config.station(session.station) is None
                   else "its station already has a resumed session"
                   if any(r.station == session.station for r in resumed) else "")
            if why:
                closed.append(self._close_at_checkpoint(cp, tariff, why))
                continue
            st.sessions[session.id] = session
            st.session_tariffs[session.id] = tariff
            if isinstance(cp.get("voucher_code"), str):
                st.voucher_codes[session.id] = cp["voucher_code"]
            resumed.append(session)
            st.resumed.add(session.id)
            log.warning("session %s on station %s resumed (%s) after %.0f s stopped; "
                        "billed %d s so far", session.id, session.station, session.state,
                        away, session.billed_seconds(mono))
        if resumed:
            self.checkpoint()  # the new stretch and this boot's clock reading are stored
        return closed

    def _close_at_checkpoint(self, cp: dict[str, Any], tariff: Tariff,
                             why: str) -> dict[str, Any]:
        st = self.state
        session = Session.from_checkpoint(cp, st.clock.monotonic(), checkpoint_instant(cp))
        rec = session.close_billed(int(cp["billed_seconds"]), EndReason.RESTART_RECOVERY,
                                   tariff, st.tz)
        record = {**rec.to_record(), "at": rec.ended_at.isoformat()}
        code = cp.get("voucher_code") if isinstance(cp.get("voucher_code"), str) else None
        stored: dict[str, Any] = st.ledger.close_session(record, code, rec.billed_seconds)
        log.warning("session %s on station %s closed by restart recovery after %d s (%s)",
                    rec.id, rec.station, rec.billed_seconds, why)
        return stored

    def _close_unreadable(self, cp: dict[str, Any], exc: Exception) -> dict[str, Any]:
        """Close a damaged checkpoint with what it still says (logged once, here)."""
        st = self.state
        station = cp.get("station") if isinstance(cp.get("station"), str) else None
        billed = cp.get("billed_seconds")
        if isinstance(billed, bool) or not isinstance(billed, int) or billed < 0:
            billed = 0
        limit = cp.get("limit_seconds")
        if isinstance(limit, int) and not isinstance(limit, bool) and 0 <= limit < billed:
            billed = limit
        started = _instant(cp.get("started_at")) or _instant(cp.get("at")) or st.clock.now()
        category = cp.get("category") if isinstance(cp.get("category"), str) else None
        code = cp.get("voucher_code") if isinstance(cp.get("voucher_code"), str) else None
        voucher_id = cp.get("voucher_id") if isinstance(cp.get("voucher_id"), str) else None
        tariff = st.checkpoint_tariff(cp) if isinstance(cp.get("tariff"), dict) else st.tariff
        fee = 0
        if voucher_id is None and code is None:
            try:
                fee = compute_fee(tariff, started, billed, st.tz, category)
            except ValueError:  # an unknown category: the fee without it
                fee = compute_fee(tariff, started, billed, st.tz)
        ended = started + timedelta(seconds=billed)
        record = {
            "type": "session", "id": str(cp["id"]), "station": station or UNKNOWN_STATION,
            "started_at": started.isoformat(), "ended_at": ended.isoformat(),
            "billed_seconds": billed, "fee": fee, "currency": tariff.currency,
            "category": category, "voucher_id": voucher_id,
            "operator": cp.get("operator") if isinstance(cp.get("operator"), str) else None,
            "minutes": None, "end_reason": str(EndReason.RESTART_RECOVERY),
            "paid_by": "voucher" if (voucher_id or code) else "cash",
            "at": ended.isoformat(),
        }
        try:
            stored: dict[str, Any] = st.ledger.close_session(record, code, billed)
        except (ValueError, KeyError):  # not a voucher code: the session closes without it
            stored = st.ledger.close_session(record, None, billed)
        log.error("session %s: its checkpoint is unreadable (%s: %s); closed by restart "
                  "recovery with what it says: station %s, %d s billed, fee %d",
                  record["id"], type(exc).__name__, exc, record["station"], billed, fee)
        return stored

    def tick(self) -> list[dict[str, Any]]:
        """Close sessions whose time is up; checkpoint the others when due."""
        st = self.state
        now = st.clock.monotonic()
        closed = [self.close(s, EndReason.TIME_EXHAUSTED)
                  for s in list(st.sessions.values()) if s.exhausted(now)]
        if st.sessions and now - st.last_checkpoint >= st.config.checkpoint_seconds:
            self.checkpoint()
        return closed

    def checkpoint(self) -> None:
        st = self.state
        now = st.clock.monotonic()
        with st.ledger_write():
            st.ledger.checkpoint([st.checkpoint_of(s, now) for s in st.sessions.values()])
        st.last_checkpoint = now

    # ---------------------------------------------------------------- views

    def active(self) -> list[dict[str, Any]]:
        self.tick()
        return [self.state.session_view(s) for s in self.state.sessions.values()]

    # ---------------------------------------------------------------- changes

    def start(self, station_id: str, minutes: int | None, category: str | None,
              operator: str, profile: dict[str, str] | None = None) -> dict[str, Any]:
        st = self.state
        st.require_station(station_id)
        st.check_category(category)
        self.tick()
        st.require_unlocked(station_id)
        if st.session_on(station_id) is not None:
            raise DomainError("station_busy", f"station {station_id} already has a session")
        s = Session(id=new_id(), station=station_id, started_at=st.clock.now(),
                    mono_start=st.clock.monotonic(),
                    limit_seconds=None if minutes is None else minutes * 60,
                    category=category or None, operator=operator, profile=profile)
        st.session_tariffs[s.id] = st.tariff
        try:
            with st.ledger_write():
                st.ledger.start_session(st.checkpoint_of(s, st.clock.monotonic()))
                st.sessions[s.id] = s
        finally:
            if s.id not in st.sessions:
                st.session_tariffs.pop(s.id, None)
        log.info("session %s started on %s by %s (%s min)", s.id, station_id, operator,
                 "open" if minutes is None else minutes)
        st.audit_action(f"operator:{operator}", "session.start", station_id, session=s.id,
                        minutes=minutes, category=category or None)
        return st.session_view(s)

    def pause(self, session_id: str, reason: str | None, actor: str) -> dict[str, Any]:
        """Stop a running session's billed and remaining time (the kiosk shows it paused)."""
        st = self.state
        s = self.get(session_id)
        paused = s.pause(st.clock.monotonic(), reason)  # SessionError: already paused, over
        self._store([paused])
        log.info("session %s on %s paused by %s", s.id, s.station, actor)
        st.audit_action(actor, "session.pause", s.station, session=s.id, reason=reason)
        return st.session_view(paused)

    def resume(self, session_id: str, actor: str) -> dict[str, Any]:
        st = self.state
        s = self.get(session_id)
        running = s.resume(st.clock.monotonic())  # SessionError: it is running
        self._store([running])
        log.info("session %s on %s resumed by %s", s.id, s.station, actor)
        st.audit_action(actor, "session.resume", s.station, session=s.id)
        return st.session_view(running)

    def move(self, session_id: str, station_id: str, actor: str) -> dict[str, Any]:
        """Move a session (same id, time, bill) to a free, unlocked station."""
        st = self.state
        st.require_station(station_id)
        s = self.get(session_id)
        if s.station == station_id:
            raise DomainError("station_busy", f"the session is already on {station_id}")
        st.require_unlocked(station_id)
        if st.session_on(station_id) is not None:
            raise DomainError("station_busy", f"station {station_id} already has a session")
        moved = s.moved(station_id)
        self._store([moved])
        st.moves[s.station] = (s.id, station_id, st.clock.monotonic())
        log.info("session %s moved from %s to %s by %s", s.id, s.station, station_id, actor)
        st.audit_action(actor, "session.move", s.station, session=s.id, to=station_id)
        return st.session_view(moved)

    def pause_all(self, reason: str | None, actor: str) -> dict[str, Any]:
        """Pause every running session (a power cut on UPS, a dead uplink)."""
        st = self.state
        self.tick()
        mono = st.clock.monotonic()
        changed = [s.pause(mono, reason) for s in st.sessions.values()
                   if not s.paused and not s.exhausted(mono)]
        self._store(changed)
        ids = [s.id for s in changed]
        st.audit_action(actor, "session.pause_all", "*", sessions=ids, reason=reason)
        log.info("%d session(s) paused by %s", len(ids), actor)
        return {"sessions": ids}

    def resume_all(self, actor: str) -> dict[str, Any]:
        st = self.state
        self.tick()
        mono = st.clock.monotonic()
        changed = [s.resume(mono) for s in st.sessions.values() if s.paused]
        self._store(changed)
        ids = [s.id for s in changed]
        st.audit_action(actor, "session.resume_all", "*", sessions=ids)
        log.info("%d session(s) resumed by %s", len(ids), actor)
        return {"sessions": ids}

    def set_profile(self, station_id: str, profile: dict[str, str] | None) -> dict[str, Any]:
        """The citizen's answer to "help us count" at the kiosk, once per session (CONTRACT
        §9b); skipping sends nothing. One checkpoint write."""
        st = self.state
        st.require_station(station_id)
        self.tick()
        s = st.session_on(station_id)
        if s is None:
            raise DomainError("no_session", f"station {station_id} has no session")
        if s.profile is not None:
            raise DomainError("profile_given", "profile: this session already has one")
        if profile is None:
            raise DomainError("bad_profile", "profile: give at least one of purpose, "
                              "age_band, gender (or skip: send nothing)")
        self._store([replace(s, profile=profile)])
        return st.session_view(st.sessions[s.id])

    def _store(self, changed: list[Session]) -> None:
        """Checkpoint changed sessions, then put them in memory."""
        if not changed:
            return
        st = self.state
        mono = st.clock.monotonic()
        with st.ledger_write():
            st.ledger.checkpoint([st.checkpoint_of(s, mono) for s in changed])
            for s in changed:
                st.sessions[s.id] = s

    def get(self, session_id: str) -> Session:
        self.tick()
        s = self.state.sessions.get(session_id)
        if s is None:
            raise DomainError("unknown_session", f"no active session {session_id!r}")
        return s

    def extend(self, session_id: str, minutes: int, operator: str) -> dict[str, Any]:
        st = self.state
        s = self.get(session_id)
        mono = st.clock.monotonic()
        extended = s.extend(minutes, mono)  # SessionError is a DomainError with its code
        with st.ledger_write():
            st.ledger.checkpoint([st.checkpoint_of(extended, mono)])
            st.sessions[s.id] = extended
        log.info("session %s extended by %d min by %s", s.id, minutes, operator)
        st.audit_action(f"operator:{operator}", "session.extend", s.station, session=s.id,
                        minutes=minutes)
        return st.session_view(extended)

    def end(self, session_id: str, reason: EndReason,
            actor: str | None = None) -> dict[str, Any]:
        """End a session; ``actor`` (``operator:NAME``, ``hub``) is recorded in the audit."""
        record = self.close(self.get(session_id), reason)
        if actor is not None:
            self.state.audit_action(actor, "session.end", record["station"], session=session_id,
                                    fee=record["fee"], billed_seconds=record["billed_seconds"])
        return record

    def end_on_station(self, station_id: str, reason: EndReason,
                       actor: str | None = None) -> dict[str, Any]:
        st = self.state
        st.require_station(station_id)
        self.tick()
        s = st.session_on(station_id)
        if s is None:
            raise DomainError("no_session", f"station {station_id} has no session")
        if s.paused:
            raise DomainError("session_paused",
                              "the centre paused this session; please ask at the counter")
        record = self.close(s, reason)
        st.audit_action(actor or f"station:{station_id}", "session.end", station_id,
                        session=s.id, reason=str(reason), fee=record["fee"])
        return record

    def close(self, s: Session, reason: EndReason) -> dict[str, Any]:
        st = self.state
        closed = s.close(st.clock.monotonic(), reason, st.tariff_of(s), st.tz)
        record = {**closed.to_record(), "at": closed.ended_at.isoformat()}
        code = st.voucher_codes.get(s.id)
        with st.ledger_write():
            stored = st.ledger.close_session(record, code, closed.billed_seconds)
            st.forget(s.id)
        log.info("session %s on %s closed (%s): %d s, fee %d", s.id, s.station, reason,
                 closed.billed_seconds, closed.fee)
        out = dict(stored)
        if code is not None:
            entry = st.ledger.voucher(code)
            if entry is not None:
                out["voucher_minutes_left"] = int(entry["voucher"]["seconds_left"]) // 60
        return out


def _instant(raw: object) -> datetime | None:
    """An aware instant from a stored text, or None."""
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None
