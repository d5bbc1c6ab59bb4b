"""The long-lived tasks of one agent application, under one ``asyncio.TaskGroup``.

The group runs the session ticker (time-exhausted sessions closed, checkpoints taken,
systemd watchdog pinged), the MQTT reporter and the content sync. Shutdown happens in this
order, once HTTP has stopped accepting (aiohttp closes the site before its cleanup runs):

1. stop the group: the ticker, the content sync and the reporter's connection loop end;
2. write a last checkpoint of the running sessions (on the service thread);
3. save the content cache's state and close its downloads;
4. publish the retained ``offline`` status and disconnect from the broker;
5. release the service thread (the executor);
6. the owner of the ledger closes it (``agent.daemon``) after the application is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from agent.content import ContentCache
from agent.reporter import Reporter
from agent.service import AgentService
from agent.systemd import Notifier

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0  # how often time-exhausted sessions are closed and checkpoints taken


class AgentRuntime:
    def __init__(self, service: AgentService, executor: ThreadPoolExecutor,
                 reporter: Reporter | None = None, content: ContentCache | None = None,
                 notifier: Notifier | None = None) -> None:
        self.service = service
        self.executor = executor
        self.reporter = reporter
        self.content = content
        self.notifier = notifier if notifier is not None else Notifier()

    # ---------------------------------------------------------------- the tasks

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            try:
                await loop.run_in_executor(self.executor, self.service.tick)
            except Exception:
                log.exception("session tick failed; retrying in %s s", TICK_SECONDS)
            else:  # systemd: READY=1, then watchdog pings (agent/systemd.py)
                self.notifier.tick()

    async def _reporting(self, reporter: Reporter) -> None:
        """The reporter's life in the group: it connects and reconnects on its own task
        (``Reporter.start``); ``shutdown`` publishes the retained offline once the group
        has ended."""
        reporter.start()
        await asyncio.Event().wait()  # until the group is cancelled

    async def run(self) -> None:
        """Run the tasks until cancelled; one that fails is logged and the others go on."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_logged("ticker", self._ticker()))
            if self.reporter is not None:
                tg.create_task(_logged("reporter", self._reporting(self.reporter)))
            if self.content is not None and self.content.cfg.hub_url:
                tg.create_task(_logged("content sync", self.content.run()))

    # ---------------------------------------------------------------- start and stop

    async def shutdown(self, group: asyncio.Task[None]) -> None:
        """Stop in the order of the module doc (steps 1-5)."""
        self.notifier.stopping()
        group.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await group
        loop = asyncio.get_running_loop()
        if self.service.sessions:
            await loop.run_in_executor(self.executor, self.service.checkpoint)
        try:  # the content-use counts since the last flush (a kill -9 loses them)
            await loop.run_in_executor(self.executor, self.service.flush_content_use)
        except Exception:
            log.exception("content-use counts not saved at stop")
        if self.content is not None:
            await self.content.close()
        if self.reporter is not None:
            await self.reporter.stop()
        self.executor.shutdown(wait=True)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """aiohttp's cleanup context: start on startup, ``shutdown`` on cleanup."""
        if self.content is not None:
            await self.content.open()
        group = asyncio.create_task(self.run(), name="agent-runtime")
        yield
        await self.shutdown(group)


async def _logged(name: str, work: Coroutine[Any, Any, None]) -> None:
    """Await ``work``; a crash is logged instead of cancelling its siblings."""
    try:
        await work
    except Exception:
        log.exception("agent task %s stopped by an error", name)
