"""Stations: who is online, locks (they survive a restart), kiosk messages, the views.

The rules (online window, lock record, message limits and expiry) are the meter's
(``agent.meter.stations``); this module keeps their state and the locks' file.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from agent.errors import DomainError
from agent.meter.session import EndReason
from agent.meter.stations import Message, check_message, is_online, new_lock
from agent.storage import atomic_write_bytes
from agent.usecases.sessions import Sessions
from agent.usecases.state import AgentState, new_id, storage_error

log = logging.getLogger(__name__)

STATIONS_FILE = "stations.json"  # station locks (they survive a restart)
MOVED_NOTICE_SECONDS = 120.0  # the old station's kiosk says where a moved session went


class Stations:
    def __init__(self, state: AgentState, sessions: Sessions) -> None:
        self.state = state
        self.sessions = sessions
        self.messages: dict[str, Message] = {}  # station -> message shown on its kiosk
        self._by_token = {s.token: s.id for s in state.config.stations}
        state.locks = self._load_locks()

    # ---------------------------------------------------------------- tokens

    def for_token(self, token: str, station_id: str) -> str:
        """The station a kiosk's token belongs to; it must be ``station_id``."""
        sid = self._by_token.get(token)
        if sid is None:
            raise DomainError("unauthorized", "unknown station token")
        if sid != station_id:
            raise DomainError("forbidden", "a station token acts on its own station only")
        self.state.station_seen[sid] = self.state.clock.monotonic()
        return sid

    # ---------------------------------------------------------------- the locks' file

    def _load_locks(self) -> dict[str, dict[str, Any]]:
        path = self.state.state_dir / STATIONS_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.exception("%s is unreadable; every station starts unlocked", path)
            return {}
        locks = raw.get("locks", {}) if isinstance(raw, dict) else {}
        return {k: v for k, v in locks.items()
                if isinstance(v, dict) and self.state.config.station(k) is not None}

    def _save_locks(self, locks: dict[str, dict[str, Any]]) -> None:
        data = json.dumps({"locks": locks}, ensure_ascii=False, indent=1).encode()
        try:
            atomic_write_bytes(self.state.state_dir / STATIONS_FILE, data)
        except OSError as exc:
            raise storage_error("the station state", exc) from None

    # ---------------------------------------------------------------- views

    def _message_of(self, station_id: str) -> dict[str, Any] | None:
        m = self.messages.get(station_id)
        if m is None:
            return None
        if m.expired(self.state.clock.monotonic()):
            del self.messages[station_id]
            return None
        return m.to_view()

    def station_state(self, station_id: str) -> dict[str, Any]:
        """What a kiosk must show besides its session: a lock and an operator message."""
        lock = self.state.locks.get(station_id)
        return {"locked": lock is not None, "lock": lock, "message": self._message_of(station_id)}

    def view(self, station_id: str) -> dict[str, Any]:
        st = self.state
        st.require_station(station_id)
        s = st.session_on(station_id)
        return {
            "id": station_id,
            "online": is_online(st.station_seen.get(station_id), st.clock.monotonic()),
            "session": None if s is None else st.session_view(s),
            **self.station_state(station_id),
        }

    def all(self) -> list[dict[str, Any]]:
        self.sessions.tick()
        return [self.view(station.id) for station in self.state.config.stations]

    def session_of(self, station_id: str) -> dict[str, Any]:
        """A kiosk's poll: its session (with a voucher's minutes left) and its state."""
        st = self.state
        st.require_station(station_id)
        self.sessions.tick()
        s = st.session_on(station_id)
        state = self.station_state(station_id)
        if s is None:
            moved = st.moves.get(station_id)
            if moved is not None and st.clock.monotonic() - moved[2] <= MOVED_NOTICE_SECONDS:
                return {"session": None, "moved": {"session": moved[0], "to": moved[1]},
                        **state}
            return {"session": None, **state}
        view = st.session_view(s)
        if st.voucher_codes.get(s.id) is not None:
            view["voucher_minutes_left"] = max(
                0, ((s.limit_seconds or 0) - s.billed_seconds(st.clock.monotonic())) // 60)
        return {"session": view, **state}

    def health_snapshot(self) -> dict[str, Any]:
        """Backlog and each station's state as plain data, for the health report (read-only)."""
        st = self.state
        now = st.clock.monotonic()
        stations = []
        for station in st.config.stations:
            seen = st.station_seen.get(station.id)
            stations.append({
                "id": station.id,
                "online": is_online(seen, now),
                "last_seen_s": None if seen is None else round(now - seen, 1),
                "in_session": st.session_on(station.id) is not None,
                "locked": station.id in st.locks,
            })
        content = st.content_status() if st.content_status is not None else {}
        return {"backlog": st.ledger.backlog(), "stations": stations, "content": content,
                "tariff_version": st.tariff_info["version"]}

    # ---------------------------------------------------------------- changes

    def lock(self, station_id: str, actor: str, reason: str = "") -> dict[str, Any]:
        """Lock a station: no new session starts on it; a running one ends now (billed)."""
        st = self.state
        st.require_station(station_id)
        self.sessions.tick()
        if station_id not in st.locks:
            lock = new_lock(reason, actor, st.clock.now())
            self._save_locks({**st.locks, station_id: lock})
            st.locks[station_id] = lock
            st.audit_action(actor, "station.lock", station_id, reason=reason)
        s = st.session_on(station_id)
        if s is not None:
            self.sessions.end(s.id, EndReason.OPERATOR, actor)
        return self.view(station_id)

    def unlock(self, station_id: str, actor: str) -> dict[str, Any]:
        st = self.state
        st.require_station(station_id)
        if station_id in st.locks:
            rest = {k: v for k, v in st.locks.items() if k != station_id}
            self._save_locks(rest)
            st.locks = rest
            st.audit_action(actor, "station.unlock", station_id)
        return self.view(station_id)

    def send_message(self, station_id: str | None, text: str, seconds: int | None,
                     actor: str) -> list[dict[str, Any]]:
        """Show ``text`` on one kiosk (or all with ``station_id=None``) for ``seconds``
        (until replaced or cleared when None); an empty text clears the message."""
        st = self.state
        targets = [s.id for s in st.config.stations] if station_id is None else [station_id]
        for sid in targets:
            st.require_station(sid)
        text = check_message(text, seconds)
        now, mono = st.clock.now(), st.clock.monotonic()
        for sid in targets:
            if not text:
                self.messages.pop(sid, None)
            else:
                self.messages[sid] = Message.new(new_id(), text, actor, now, mono, seconds)
        st.audit_action(actor, "station.message" if text else "station.message_clear",
                        station_id or "*", text=text, seconds=seconds)
        return [self.view(sid) for sid in targets]
