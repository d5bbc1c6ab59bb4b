"""The citizen's held prints (issue 17): during a session the kiosk asks the agent every
``PRINT_POLL_SECONDS`` for this station's jobs waiting at the counter and the session screen,
or the bar over the citizen's apps, says "3 pages, 3,00 MAD: collect them at the counter".
An agent without print release (404) or a print server that does not answer means no
notice, never an error on screen."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from kiosk.client import AgentRefused, AgentUnreachable

if TYPE_CHECKING:
    from kiosk.app import KioskApp

log = logging.getLogger(__name__)

PRINT_POLL_SECONDS = 10.0


def summary(jobs: list[dict[str, Any]]) -> tuple[int, int, str] | None:
    """(pages, price in centimes, currency) of the held jobs, or None when there are none."""
    if not jobs:
        return None
    pages = sum(int(j.get("pages") or 0) for j in jobs)
    price = sum(int(j.get("price") or 0) for j in jobs)
    return pages, price, str(jobs[0].get("currency") or "MAD")


class PrintWatcher:
    def __init__(self, app: KioskApp) -> None:
        self.app = app
        self.busy = False
        self.next_at = 0.0

    def tick(self, now: float) -> None:
        app = self.app
        if app.session is None:
            if app.print_jobs:
                app.print_jobs = []
            return
        if self.busy or now < self.next_at:
            return
        self.busy, self.next_at = True, now + PRINT_POLL_SECONDS
        app.run_bg(app.client.print_jobs, self._done)

    def _done(self, fut: Future[Any]) -> None:
        self.busy = False
        app = self.app
        try:
            jobs = list(fut.result())
        except (AgentRefused, AgentUnreachable) as exc:
            log.debug("print jobs unavailable: %s", exc)
            jobs = []
        if jobs != app.print_jobs:
            app.print_jobs = jobs
            app.trace("print_jobs", jobs=len(jobs),
                      pages=sum(int(j.get("pages") or 0) for j in jobs))
            if app.screen in ("session", "bar"):  # the notice on the screen or the bar
                app.show(app.screen)
