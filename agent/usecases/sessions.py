"""Sessions: start, extend and end them, close the ones whose time is up, checkpoint, recover.

Every change is durable in the ledger before the call returns; memory changes only after
the ledger write succeeded (``AgentState.ledger_write``).
"""

from __future__ import annotations

import logging
from typing import Any

from agent.errors import DomainError
from agent.meter.session import EndReason, Session
from agent.usecases.state import AgentState, new_id

log = logging.getLogger(__name__)


class Sessions:
    def __init__(self, state: AgentState) -> None:
        self.state = state

    # ---------------------------------------------------------------- lifecycle

    def recover(self) -> list[dict[str, Any]]:
        """Close the sessions a crash interrupted, billed up to their last checkpoint."""
        st = self.state
        closed = []
        for cp in st.ledger.active_checkpoints():
            session = Session.from_checkpoint(cp, st.clock.monotonic())
            rec = session.close_billed(int(cp["billed_seconds"]), EndReason.RESTART_RECOVERY,
                                       st.checkpoint_tariff(cp), st.tz)
            record = {**rec.to_record(), "at": rec.ended_at.isoformat()}
            closed.append(st.ledger.close_session(
                record, cp.get("voucher_code"), rec.billed_seconds))
            log.warning("session %s on station %s closed by restart recovery after %d s",
                        rec.id, rec.station, rec.billed_seconds)
        return closed

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
              operator: str) -> dict[str, Any]:
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
                    category=category or None, operator=operator)
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
