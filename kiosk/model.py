"""The kiosk's pure rules: which screen the agent's answer calls for, the local countdown,
the time warnings, the idle timeout, the exit-PIN failure lockout, voucher code, PIN and
search entry, the poll interval. No Kivy, no sockets, no clock reads: time (a monotonic
``now``) comes in as an argument."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.codes import CROCKFORD_ALPHABET

VOUCHER_ALPHABET = CROCKFORD_ALPHABET  # CONTRACT §4

WARN_AT_SECONDS = (300, 60)  # warnings at 5 and 1 minutes left
PIN_MAX_FAILURES = 5          # wrong exit PINs in a row before the PIN screen is blocked
PIN_BLOCK_SECONDS = 60
PIN_MAX_DIGITS = 12
SEARCH_MAX_CHARS = 40
OFFLINE_AFTER_FAILURES = 2    # polls that fail in a row before the out-of-service screen
REDEEM_BLOCK_SECONDS = 60     # a 429 without Retry-After blocks redeeming this long
VOUCHER_SYMBOLS = 10

# screens that belong to a running session (the poll keeps the citizen where they are)
SESSION_SCREENS = frozenset({"session", "bar", "portal", "portal_item", "portal_pdf",
                             "pin", "profile"})
# the "help us count" answers (CONTRACT §9b, the agent's [impact] defaults) and their words
PROFILE_CHOICES: dict[str, tuple[str, ...]] = {
    "purpose": ("egov", "job", "school", "business", "training", "other"),
    "age_band": ("<18", "18-24", "25-34", "35-54", "55+"),
    "gender": ("f", "m", "x"),
}
PROFILE_WORDS: dict[str, dict[str, str]] = {
    "purpose": {"egov": "Public services", "job": "Find a job", "school": "School",
                "business": "My business", "training": "Training", "other": "Something else"},
    "age_band": {"<18": "Under 18", "18-24": "18 to 24", "25-34": "25 to 34",
                 "35-54": "35 to 54", "55+": "55 and over"},
    "gender": {"f": "Woman", "m": "Man", "x": "Rather not say"},
}
# screens without a session that a poll answer must not interrupt
IDLE_SCREENS = frozenset({"welcome", "voucher", "operator", "portal", "portal_item",
                          "portal_pdf", "receipt", "pin"})


def decide(current: str, poll: dict[str, Any] | None, had_session: bool) -> str:
    """The screen to show after a poll answer (``None``: the agent is unreachable).

    ``had_session``: the kiosk was showing a session that the answer no longer has.
    """
    if poll is None:
        return "session" if current in SESSION_SCREENS and had_session else "offline"
    if poll.get("locked"):
        return "locked"
    if poll.get("session") is not None:
        if poll["session"].get("state") == "paused":  # the operator's exit PIN stays
            return "pin" if current == "pin" else "paused"
        return current if current in SESSION_SCREENS else "session"
    if had_session:
        return "receipt"
    if current in ("offline", "locked", "session", "paused"):
        return "welcome"
    return current if current in IDLE_SCREENS else "welcome"


@dataclass
class Countdown:
    """Remaining seconds told by the agent, counted down locally between polls."""

    remaining: float | None = None  # None: open-ended session
    at: float = 0.0
    running: bool = True  # a paused session's time stands still (CONTRACT §7)

    def set(self, remaining: float | None, now: float, running: bool = True) -> None:
        self.remaining = remaining
        self.at = now
        self.running = running

    def value(self, now: float) -> int | None:
        if self.remaining is None:
            return None
        if not self.running:
            return max(0, int(round(self.remaining)))
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
        return ("Too many wrong codes. Try again in {seconds} s.",
                {"seconds": redeem_block_seconds(retry_after)})
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


def redeem_block_seconds(retry_after: int | None) -> int:
    """How long a refused (429) redeem keeps Start disabled: the agent's Retry-After."""
    return retry_after or REDEEM_BLOCK_SECONDS


def type_pin(typed: str, symbol: str) -> str:
    """The typed PIN after one key: ``<`` deletes, at most 12 digits."""
    return typed[:-1] if symbol == "<" else (typed + symbol)[:PIN_MAX_DIGITS]


def type_search(query: str, ch: str) -> str:
    """The search text after one key (at most 40 characters)."""
    return (query + ch)[:SEARCH_MAX_CHARS]


def warning_msgid(threshold: int) -> str:
    """The text of the time warning at ``threshold`` seconds left."""
    return ("5 minutes left. Save your work." if threshold >= 300
            else "1 minute left. Save your work now.")


def poll_delay(in_session: bool, poll_seconds: float, retry_seconds: float) -> float:
    """Seconds to the next poll after a failed one: a session keeps the normal pace (its
    time goes on at the agent), the out-of-service screen retries at its own pace."""
    return poll_seconds if in_session else retry_seconds


def out_of_service(fails: int, polled_once: bool) -> bool:
    """Failed polls without a session call for the out-of-service screen: at once before
    the first answer, after OFFLINE_AFTER_FAILURES in a row later on."""
    return fails >= OFFLINE_AFTER_FAILURES or not polled_once


def moved_to(poll: dict[str, Any], last: dict[str, Any]) -> str | None:
    """The station the kiosk's session was moved to, if the agent's answer says so."""
    moved = poll.get("moved")
    if isinstance(moved, dict) and moved.get("session") == last.get("id"):
        return str(moved.get("to"))
    return None


def receipt_from_session(last: dict[str, Any]) -> dict[str, Any]:
    """The receipt to show when the agent's end record is not at hand: the last view."""
    return {"billed_seconds": last.get("billed_seconds", 0), "fee": last.get("fee_so_far", 0),
            "currency": last.get("currency", "MAD"),
            "voucher_minutes_left": last.get("voucher_minutes_left")}


def pin_return_screen(target: str, in_session: bool) -> str:
    """Where Back on the PIN screen goes: a session screen only while the session runs."""
    return "welcome" if target in SESSION_SCREENS and not in_session else target


@dataclass
class FailureLockout:
    """Wrong exit PINs: after ``max_failures`` in a row, further tries are refused for
    ``block_seconds``; the count starts again after a block."""

    max_failures: int = PIN_MAX_FAILURES
    block_seconds: float = PIN_BLOCK_SECONDS
    failures: int = 0
    blocked_until: float = 0.0

    def blocked(self, now: float) -> bool:
        return self.blocked_until > now

    def failed(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.max_failures:
            self.failures = 0
            self.blocked_until = now + self.block_seconds


@dataclass(frozen=True)
class IdleVerdict:
    """What the idle rule calls for: ``end`` the session, ``warn`` with ``seconds_left``
    (shown rounded up), or nothing (``warn`` and ``end`` both False: no warning shown)."""

    end: bool = False
    warn: bool = False
    seconds_left: int = 0


IDLE_NONE = IdleVerdict()


def idle_verdict(*, now: float, last_activity: float, idle_seconds: float,
                 warning_seconds: float, in_session: bool, screen: str, ending: bool,
                 x_idle: float | None = None) -> IdleVerdict:
    """The idle timeout of a session: no touch or key on the kiosk (nor, when ``x_idle`` is
    given, on the whole X display) for ``idle_seconds`` ends it, after a warning during its
    last ``warning_seconds``. Off outside session screens, while ending, or at 0 seconds."""
    if not in_session or screen not in SESSION_SCREENS or idle_seconds <= 0 or ending:
        return IDLE_NONE
    idle = now - last_activity
    if x_idle is not None:
        idle = min(idle, x_idle)
    left = idle_seconds - idle
    if left <= 0:
        return IdleVerdict(end=True)
    if left <= warning_seconds:
        return IdleVerdict(warn=True, seconds_left=int(left + 0.99))
    return IDLE_NONE
