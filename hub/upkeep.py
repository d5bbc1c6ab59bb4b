"""Fleet upkeep: alarm rules run over the fleet, raised and cleared alarms saved, unanswered
commands expired. Run by the hub's tick (``hub.daemon``), not by a web module.

DESIGN (Scale), CONTRACT §9: with several hub workers, only the one holding the lease in
the store (hub/lease.py) runs the upkeep; when it dies another takes the lease over and first
reloads the active alarms from the store, so an alarm is not raised twice.
The rules themselves are pure (``hub.alarms.conditions``, ``AlarmBook``); this module only
decides when they run and stores what they found.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, Protocol, TypeVar

from hub import alarms, commands, lease
from hub.config import HubConfig
from hub.fleet import CacView
from hub.store import StoreError

log = logging.getLogger(__name__)

ALARM_SECONDS = 2.0  # how often alarm rules run
COMMAND_EXPIRY_SECONDS = 10.0  # how often unanswered commands are checked for expiry

T = TypeVar("T")


class Db(Protocol):
    """Runs ``fn(connection, *args)`` on the store's thread (in a transaction with ``write``)."""

    def __call__(self, fn: Callable[..., T], *args: Any,
                 write: bool = False) -> Coroutine[Any, Any, T]: ...


class Upkeep:
    """When the fleet rules run, and what becomes of their results."""

    def __init__(self, config: HubConfig, views: Callable[[], Iterable[CacView]], db: Db,
                 on_alarms: Callable[[dict[str, int]], None] = lambda counts: None,
                 hold_lease: Callable[[], Awaitable[bool]] | None = None) -> None:
        """``on_alarms`` gets the active alarm count of each CAC whenever it may have changed.
        ``hold_lease`` takes or renews the upkeep lease (True: held); None: always run."""
        self.config = config
        self.hold_lease = hold_lease
        self.leader = hold_lease is None  # holds the lease (as of the last renewal)
        self._next_lease = 0.0
        self.views = views
        self.db = db
        self.on_alarms = on_alarms
        self.alarm_book = alarms.AlarmBook(config.alarms)
        self._next_alarms = self._next_expiry = 0.0

    async def start(self) -> None:
        """Take over the alarms that are active in the store."""
        self.alarm_book = alarms.AlarmBook(self.config.alarms, await self.db(alarms.load_active))
        self.on_alarms(self.alarm_book.count_by_cac())

    async def renew(self, now: float) -> bool:
        """Take or renew the lease when due; on taking it, reload the active alarms."""
        if self.hold_lease is None or now < self._next_lease:
            return self.leader
        self._next_lease = now + lease.RENEW_SECONDS
        try:
            held = await self.hold_lease()
        except StoreError as exc:  # the store is down: not the leader until it is back
            log.error("upkeep lease not renewed: %s", exc)  # noqa: TRY400
            held = False
        if held and not self.leader:
            log.warning("upkeep lease taken: this worker now raises alarms and expires "
                        "commands")
            await self.start()
            self._next_alarms = self._next_expiry = 0.0
        elif self.leader and not held:
            log.warning("upkeep lease lost to another worker")
        self.leader = held
        return held

    async def tick(self, now: float) -> None:
        try:
            if not await self.renew(now):
                return
            if now >= self._next_alarms:
                self._next_alarms = now + ALARM_SECONDS
                await self.evaluate_alarms(now)
            if now >= self._next_expiry:
                self._next_expiry = now + COMMAND_EXPIRY_SECONDS
                await self.expire_commands(now)
        except StoreError as exc:
            log.error("fleet upkeep failed: %s", exc)  # noqa: TRY400

    async def evaluate_alarms(self, now: float) -> None:
        """Run the alarm rules over the fleet; save what was raised and cleared."""
        raised, cleared = self.alarm_book.evaluate(self.views(), now)
        if not raised and not cleared:
            return
        opened = await self.db(alarms.save, raised, cleared, now, write=True)
        for a in opened:
            self.alarm_book.opened(a)
            log.warning("alarm raised: %s %s: %s", a.cac_id, a.kind, a.message)
        for a in cleared:
            log.info("alarm cleared: %s %s", a.cac_id, a.kind)
        self.on_alarms(self.alarm_book.count_by_cac())

    async def expire_commands(self, now: float) -> int:
        """Mark commands unanswered for ``command_timeout_seconds`` as expired."""
        n: int = await self.db(commands.expire, now, self.config.dashboard.command_timeout_seconds,
                               write=True)
        if n:
            log.warning("%d command(s) expired without an answer", n)
        return n
