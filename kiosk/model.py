"""The kiosk's pure rules: which screen the agent's answer calls for, the local countdown,
the time warnings, voucher code entry. No Kivy, no sockets, time comes in as an argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WARN_AT_SECONDS = (300, 60)  # warnings at 5 and 1 minutes left
VOUCHER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32 (CONTRACT §4)
VOUCHER_SYMBOLS = 10

# screens that belong to a running session (the poll keeps the citizen where they are)
SESSION_SCREENS = frozenset({"session", "bar", "portal", "portal_item", "pin"})
# screens without a session that a poll answer must not interrupt
IDLE_SCREENS = frozenset({"welcome", "voucher", "operator", "portal", "portal_item",
                          "receipt", "pin"})


def decide(current: str, poll: dict[str, Any] | None, had_session: bool) -> str:
    """The screen to show after a poll answer (``None``: the agent is unreachable).

    ``had_session``: the kiosk was showing a session that the answer no longer has.
    """
    if poll is None:
        return "session" if current in SESSION_SCREENS and had_session else "offline"
    if poll.get("locked"):
        return "locked"
    if poll.get("session") is not None:
        return current if current in SESSION_SCREENS else "session"
    if had_session:
        return "receipt"
    if current in ("offline", "locked", "session"):
        return "welcome"
    return current if current in IDLE_SCREENS else "welcome"


@dataclass
class Countdown:
    """Remaining seconds told by the agent, counted down locally between polls."""

    remaining: float | None = None  # None: open-ended session
    at: float = 0.0

    def set(self, remaining: float | None, now: float) -> None:
        self.remaining = remaining
        self.at = now

    def value(self, now: float) -> int | None:
        if self.remaining is None:
            return None
        return max(0, int(round(self.remaining - (now - self.at))))


@dataclass
class Warnings:
    """Fires each threshold once per session when the remaining time goes below it; a
    session that starts (or is extended) above a threshold arms it again."""

    thresholds: tuple[int, ...] = WARN_AT_SECONDS
    session_id: str | None = None
    armed: set[int] = field(default_factory=set)

    def update(self, session_id: str, remaining: int | None) -> list[int]:
        if remaining is None:
            self.session_id = session_id
            self.armed = set()
            return []
        if session_id != self.session_id:
            self.session_id = session_id
            self.armed = {t for t in self.thresholds if remaining > t}
            return []
        for t in self.thresholds:
            if remaining > t + 5:
                self.armed.add(t)
        fired = [t for t in self.thresholds if t in self.armed and remaining <= t]
        if fired:
            # only the lowest crossed threshold is shown; the higher ones are spent too
            self.armed -= {t for t in self.thresholds if remaining <= t}
            return [min(fired)]
        return []


def add_symbol(code: str, symbol: str) -> str:
    """The typed code after one key (only Crockford symbols, at most 10)."""
    raw = code.replace("-", "")
    if symbol not in VOUCHER_ALPHABET or len(raw) >= VOUCHER_SYMBOLS:
        return code
    return format_code(raw + symbol)


def del_symbol(code: str) -> str:
    return format_code(code.replace("-", "")[:-1])


def format_code(raw: str) -> str:
    """``ABCDE12`` -> ``ABCDE-12``: the grouping printed on the ticket."""
    return raw if len(raw) <= 5 else f"{raw[:5]}-{raw[5:]}"


def code_complete(code: str) -> bool:
    return len(code.replace("-", "")) == VOUCHER_SYMBOLS


def redeem_error_message(status: int, code: str,
                         retry_after: int | None) -> tuple[str, dict[str, object]]:
    """The msgid (and its fields) to show for a refused redeem."""
    if status == 429:
        return "Too many wrong codes. Try again in {seconds} s.", {"seconds": retry_after or 60}
    return {
        "bad_code": ("This code is not valid. Check it and try again.", {}),
        "voucher_unknown": ("This code is not valid. Check it and try again.", {}),
        "voucher_other_cac": ("This voucher was sold by another centre.", {}),
        "voucher_expired": ("This voucher has expired.", {}),
        "voucher_empty": ("This voucher has no time left.", {}),
        "voucher_void": ("This voucher has been cancelled.", {}),
        "voucher_in_use": ("This voucher is in use on another station.", {}),
        "station_locked": ("This station is locked.", {}),
        "station_busy": ("A session is already running here.", {}),
    }.get(code, ("The voucher could not be used. Please ask the operator.", {}))
