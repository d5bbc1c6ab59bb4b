"""The hub process: store, fleet state, MQTT ingest and HTTP API, started and stopped in order.

Start: open the store, rebuild fleet state from it, serve HTTP, connect to the broker
(whose retained status messages then complete the fleet). Run: a tick every
``TICK_SECONDS`` applies the silence rule (``offline_after_seconds``), then the fleet upkeep
(``hub.upkeep``: alarms, command expiry) and the dashboard's refresh. Stop, in this order:
stop accepting (HTTP site closed, MQTT intake closed), drain and flush the store, publish
the retained hub ``offline``, disconnect, close the store.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from common import signing
from hub import lease
from hub.api import make_app
from hub.config import HubConfig
from hub.dashboard import Dashboard
from hub.fleet import FleetState
from hub.ingest import Ingest
from hub.mqtt import MqttLink
from hub.store import StoreError, UsageStore, open_store
from hub.upkeep import Upkeep

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0


class HubError(RuntimeError):
    """The hub cannot run (store unusable, HTTP port taken, ...); one line for the user."""


class Hub:
    """One hub process (or one worker of several); ``start``, ``run(stop)``, ``stop``."""

    def __init__(self, config: HubConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self._store: UsageStore | None = None
        self._ingest: Ingest | None = None
        self._link: MqttLink | None = None
        self._runner: web.AppRunner | None = None
        self._dashboard: Dashboard | None = None
        self._upkeep: Upkeep | None = None
        # the upkeep lease is used by workers (worker_id) and on a shared store ([store] url)
        self.lease_holder = (f"{config.status_id}-{uuid.uuid4().hex[:8]}"
                             if config.worker_id is not None or config.store_url is not None
                             else None)

    @property
    def ingest(self) -> Ingest:
        assert self._ingest is not None, "hub not started"
        return self._ingest

    @property
    def link(self) -> MqttLink:
        assert self._link is not None, "hub not started"
        return self._link

    @property
    def http_port(self) -> int:
        """The port the API listens on (useful with ``[http] port = 0``)."""
        assert self._runner is not None, "hub not started"
        for addr in self._runner.addresses:
            return int(addr[1])
        raise HubError("the HTTP site is not running")

    def _gauges(self) -> Mapping[str, tuple[str, float]]:
        link = self._link
        return {
            "mqtt_connected": ("1 if connected to the broker",
                               1 if link is not None and link.connected else 0),
            "ingest_queue": ("messages waiting for the ingest worker",
                             link.queue_depth if link is not None else 0),
            "upkeep_lease": ("1 if this worker holds the upkeep lease (alarms, command expiry)",
                             1 if self._upkeep is not None and self._upkeep.leader else 0),
        }

    async def start(self) -> None:
        cfg = self.config
        try:
            store = await asyncio.to_thread(open_store, cfg.db_path, cfg.store_url)
            rows = await asyncio.to_thread(store.load_cacs)
        except StoreError as exc:
            raise HubError(str(exc)) from None
        fleet = FleetState(cfg.offline_after_seconds, started_at=self.clock())
        fleet.restore(rows)
        self._store = store
        self._ingest = Ingest(store, fleet)
        try:
            self._link = MqttLink(cfg, self._ingest, self.clock)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            store.close()
            raise HubError(f"cannot set up the mqtt connection: {exc}") from None
        self._dashboard = Dashboard(cfg, self._ingest, self._link.publish, self.clock)
        self._upkeep = Upkeep(cfg, self._ingest.views, self._dashboard.db,
                              self._dashboard.alarms_changed, self._lease_holder_fn(store))
        try:
            await self._dashboard.start()
            await self._upkeep.start()
        except StoreError as exc:
            store.close()
            raise HubError(str(exc)) from None
        try:
            signer = (signing.load_private(cfg.signing_key_file)
                      if cfg.signing_key_file is not None else None)
        except signing.SigningError as exc:
            await self._dashboard.close()
            store.close()
            raise HubError(str(exc)) from None
        runner = web.AppRunner(make_app(self._ingest, cfg.db_path, self._gauges,
                                        self._dashboard,
                                        metrics_public=cfg.http.metrics_public,
                                        signer=signer),
                               access_log=None)
        try:
            ssl_ctx = self._ssl_context()
        except OSError as exc:
            await self._dashboard.close()
            store.close()
            raise HubError(f"cannot use [http] tls_cert/tls_key: {exc}") from None
        await runner.setup()
        try:
            await web.TCPSite(runner, cfg.http.host, cfg.http.port,
                              ssl_context=ssl_ctx).start()
        except OSError as exc:
            await runner.cleanup()
            await self._dashboard.close()
            store.close()
            raise HubError(f"cannot listen on {cfg.http.host}:{cfg.http.port}: "
                           f"{exc.strerror or exc}") from None
        self._runner = runner
        self._link.start()
        log.info("hub %s: %d CACs known from the store", cfg.hub_id, len(fleet))

    def _lease_holder_fn(self, store: UsageStore) -> Callable[[], Awaitable[bool]] | None:
        holder, dashboard = self.lease_holder, self._dashboard
        if holder is None or dashboard is None:
            return None
        if store.shared_reads:  # PostgreSQL: any thread
            return lambda: asyncio.to_thread(store.hold_lease, holder)
        return lambda: dashboard.db(lease.hold_sqlite, holder, write=True)

    async def _release_lease(self) -> None:
        holder = self.lease_holder
        if holder is None or self._upkeep is None or not self._upkeep.leader:
            return
        try:
            if self._store is not None and self._store.shared_reads:
                await asyncio.to_thread(self._store.release_lease, holder)
            elif self._dashboard is not None:
                await self._dashboard.db(lease.release_sqlite, holder, write=True)
        except StoreError as exc:
            log.error("upkeep lease not released (it expires by itself): %s", exc)  # noqa: TRY400

    def _ssl_context(self) -> ssl.SSLContext | None:
        """HTTPS with ``[http] tls_cert``/``tls_key`` (TLS 1.2 or newer), else None."""
        http = self.config.http
        if http.tls_cert is None or http.tls_key is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(http.tls_cert, http.tls_key)  # ssl.SSLError is an OSError
        return ctx

    async def tick_forever(self) -> None:
        while True:
            now = self.clock()
            self.ingest.evaluate(now)
            if self._upkeep is not None:
                await self._upkeep.tick(now)
            if self._dashboard is not None:
                await self._dashboard.tick(now)
            await asyncio.sleep(TICK_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Run the periodic tasks until ``stop`` is set."""
        async with asyncio.TaskGroup() as tg:
            ticker = tg.create_task(self.tick_forever())
            await stop.wait()
            ticker.cancel()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # stop accepting HTTP
            self._runner = None
        if self._link is not None:
            # stop MQTT intake, drain + flush the store, retained offline, disconnect
            await asyncio.to_thread(self._link.stop)
            self._link = None
        await self._release_lease()
        self._upkeep = None  # it runs on the dashboard's store thread, closed next
        if self._dashboard is not None:
            await self._dashboard.close()
            self._dashboard = None
        if self._store is not None:
            self._store.close()
            self._store = None
