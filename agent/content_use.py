"""Content use counted at the site (CONTRACT §9b, issue 18): opens per package and local day,
and per page for the most opened pages; never a search query, a station or a session.

The counts wait in memory and go to the ledger as one ``content_use`` record per day when
the service flushes them (every ``[impact] flush_minutes``, when the day changes, and at a
clean stop): each record holds the increments since the previous one, the hub sums a day's
records, and the outbox carries them exactly once like any record. The counts are taken out
of memory only inside the write that stores them (put back if it fails), so nothing is
counted twice; a kill -9 or a power cut loses at most the opens since the last flush.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

TOP_PAGES = 50  # pages per record (the most opened); packages are all counted
# what a citizen opens, as opposed to what a page loads with it (styles, scripts, images)
OPENED_TYPES = ("text/html", "application/pdf", "video/", "audio/", "application/epub")


def is_opened(media_type: str) -> bool:
    return media_type.lower().startswith(OPENED_TYPES)


class ContentUse:
    """Thread-safe counters by local day: ``note`` from the HTTP side, ``take`` and
    ``put_back`` from the service thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opens: dict[str, Counter[str]] = {}
        self._pages: dict[str, Counter[str]] = {}

    def note(self, day: str, package: str, path: str) -> None:
        with self._lock:
            self._opens.setdefault(day, Counter())[package] += 1
            self._pages.setdefault(day, Counter())[f"{package}/{path}"[:200]] += 1

    def pending(self) -> int:
        with self._lock:
            return sum(sum(c.values()) for c in self._opens.values())

    def take(self) -> list[tuple[str, dict[str, int], dict[str, int]]]:
        """Every day's counts, removed: (day, opens by package, the top pages)."""
        with self._lock:
            opens, pages = self._opens, self._pages
            self._opens, self._pages = {}, {}
        return [(day, dict(opens[day]), dict(pages.get(day, Counter()).most_common(TOP_PAGES)))
                for day in sorted(opens)]

    def put_back(self, taken: list[tuple[str, dict[str, int], dict[str, int]]]) -> None:
        """Counts whose write failed: counted again with the next flush."""
        with self._lock:
            for day, opens, pages in taken:
                self._opens.setdefault(day, Counter()).update(opens)
                self._pages.setdefault(day, Counter()).update(pages)


def records(taken: list[tuple[str, dict[str, int], dict[str, int]]], at: str,
            new_id: Any) -> list[dict[str, Any]]:
    return [{"type": "content_use", "id": new_id(), "at": at, "day": day, "opens": opens,
             "pages": pages} for day, opens, pages in taken]
