"""hub/upkeep.py with the lease (hub/lease.py): of two workers on one store only the holder
raises alarms; when it stops renewing, the other takes over, first reloading the active
alarms from the store, so no alarm is raised twice."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hub import alarms
from hub.config import AlarmConfig
from hub.fleet import CacView
from hub.store import Store
from hub.upkeep import Upkeep
from tests.hub.factories import hub_config
from tests.hub.test_alarms import NOW, h, view

T = TypeVar("T")
CFG = AlarmConfig(disk_percent=90)
TTL = 0.3


def worker(store: Store, name: str, views: Callable[[], list[CacView]]) -> Upkeep:
    async def db(fn: Callable[..., T], *args: Any, write: bool = False) -> T:
        if not write:
            return fn(store.db, *args)
        with store.transaction():
            return fn(store.db, *args)

    async def hold() -> bool:
        return store.hold_lease(name, ttl=TTL)

    cfg = dataclasses.replace(hub_config("/nonexistent"), alarms=CFG)
    return Upkeep(cfg, views, db, hold_lease=hold)


async def test_only_the_holder_raises_and_the_other_takes_over(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    hot = [view(health=h(disk_percent=95.0))]
    with Store(path) as sa, Store(path) as sb:
        a, b = worker(sa, "a", lambda: hot), worker(sb, "b", lambda: hot)
        await a.start()
        await b.start()
        await a.tick(NOW)
        await b.tick(NOW)
        assert (a.leader, b.leader) == (True, False)
        assert [x.kind for x in alarms.listing(sa.db)] == ["disk"]  # raised once, by a
        # a dies (no more ticks); b takes the lease once a's has expired
        t, deadline = NOW, time.monotonic() + 10
        while not b.leader:
            assert time.monotonic() < deadline, "b never took the lease"
            t += 5.0  # one renewal period of b's clock
            await b.tick(t)
            await asyncio.sleep(0.05)
        await b.tick(t + 5.0)
        assert [x.kind for x in alarms.listing(sb.db)] == ["disk"]  # not raised again
        await a.tick(t + 10.0)  # a comes back: the lease is b's
        assert not a.leader and b.leader
