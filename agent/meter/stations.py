"""Station rules: when a kiosk counts as online, a lock, an operator message and its expiry.

Pure: monotonic readings and wall-clock instants come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.errors import DomainError

STATION_ONLINE_SECONDS = 30.0  # a kiosk polls every few seconds; silent this long = offline
MAX_MESSAGE_CHARS = 500
MAX_MESSAGE_SECONDS = 24 * 3600


def is_online(seen: float | None, now: float) -> bool:
    """True if the station's kiosk was heard within STATION_ONLINE_SECONDS of ``now``."""
    return seen is not None and now - seen <= STATION_ONLINE_SECONDS


def new_lock(reason: str, actor: str, at: datetime) -> dict[str, Any]:
    """The stored lock of a station: no new session starts on it."""
    return {"reason": reason[:MAX_MESSAGE_CHARS], "by": actor, "at": at.isoformat()}


def check_message(text: str, seconds: int | None) -> str:
    """The text to show (stripped), or DomainError if it is too long or lasts too long."""
    text = text.strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise DomainError("bad_message", f"a message is at most {MAX_MESSAGE_CHARS} characters")
    if seconds is not None and not 1 <= seconds <= MAX_MESSAGE_SECONDS:
        raise DomainError("bad_seconds", f"seconds must be between 1 and {MAX_MESSAGE_SECONDS}")
    return text


@dataclass(frozen=True)
class Message:
    """A message shown on a kiosk, until replaced, cleared or (with seconds) expired."""

    id: str
    text: str
    sender: str
    at: datetime
    expires_at: datetime | None
    expires_mono: float | None

    @classmethod
    def new(cls, id: str, text: str, sender: str, at: datetime, mono_now: float,
            seconds: int | None) -> Message:
        return cls(id=id, text=text, sender=sender, at=at,
                   expires_at=None if seconds is None else at + timedelta(seconds=seconds),
                   expires_mono=None if seconds is None else mono_now + seconds)

    def expired(self, mono_now: float) -> bool:
        return self.expires_mono is not None and mono_now >= self.expires_mono

    def to_view(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "from": self.sender,
                "at": self.at.isoformat(),
                "expires_at": None if self.expires_at is None else self.expires_at.isoformat()}
