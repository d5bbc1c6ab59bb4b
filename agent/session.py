"""Compatibility re-export: the session state machine lives in ``agent.meter.session``."""

from agent.meter.session import (
    MAX_SESSION_MINUTES,
    ClosedSession,
    EndReason,
    Session,
    SessionError,
)

__all__ = ["MAX_SESSION_MINUTES", "ClosedSession", "EndReason", "Session", "SessionError"]
