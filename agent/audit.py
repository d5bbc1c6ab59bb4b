"""The audit trail: who did what, when, at this CAC.

One JSON line per action in ``DATA_DIR/audit/YYYY-MM.jsonl`` (local month), appended and
fsynced before the action's answer is sent. Lines are never rewritten; a line torn by a
crash is skipped on reading. Actions of operators (console or API), of the hub (remote
commands) and of the agent itself (restart recovery) are all recorded here.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.storage import append_lines_durable, read_lines


class AuditLog:
    def __init__(self, directory: Path, tz: ZoneInfo) -> None:
        self.directory = directory
        self.tz = tz
        directory.mkdir(parents=True, exist_ok=True)

    def _file(self, at: datetime) -> Path:
        return self.directory / f"{at.astimezone(self.tz):%Y-%m}.jsonl"

    def record(self, at: datetime, actor: str, action: str, target: str | None = None,
               **details: Any) -> dict[str, Any]:
        """``actor`` is ``operator:NAME``, ``station:ID``, ``hub`` or ``agent``."""
        entry: dict[str, Any] = {"at": at.isoformat(), "actor": actor, "action": action,
                                 "target": target}
        if details:
            entry["details"] = details
        append_lines_durable(self._file(at), [entry])
        return entry

    def entries(self, since: datetime | None = None, until: datetime | None = None,
                limit: int = 1000) -> list[dict[str, Any]]:
        """Newest first, at most ``limit``, within [since, until)."""
        out: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob("*.jsonl"), reverse=True):
            month = list(read_lines(path))
            for e in reversed(month):
                try:
                    at = datetime.fromisoformat(e["at"])
                except (KeyError, TypeError, ValueError):
                    continue
                if until is not None and at >= until:
                    continue
                if since is not None and at < since:
                    continue
                out.append(e)
                if len(out) >= limit:
                    return out
            if since is not None and month:
                try:
                    if datetime.fromisoformat(month[0]["at"]) < since:
                        break
                except (KeyError, TypeError, ValueError):
                    pass
        return out
