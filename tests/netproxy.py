"""A bad link for tests: a TCP proxy on loopback that throttles, delays and cuts.

This machine has no ``tc netem`` (FIELD-NOTES), so a slow, high-latency, flapping uplink is
emulated in user space: a program connects to the proxy instead of its server, and the proxy
forwards each connection to the real server through a link with

- a **rate** in bytes per second for each direction, shared by every connection (one
  uplink), with a bounded queue: a sender that outruns the link is held back by TCP itself;
- a **latency** added to every byte in each direction (a round trip costs ``2 * latency``);
- **cuts**: ``cut()`` ends every open connection now; ``hold_down(seconds)`` also turns new
  connections away until ``come_up()`` or until the seconds have passed; ``flap()`` does that
  at random from a seeded RNG (same seed, same schedule); ``cut_after_down(n)`` cuts once
  ``n`` more bytes have gone towards the client (a cut in the middle of a download).

How a cut looks to the endpoints (``mode``):

- ``"reset"``: both sides get a TCP RST at once (a modem re-dialling, a NAT that forgets);
  bytes still queued in the link are lost. New connections while down are reset at once.
- ``"blackhole"``: the open connections go silent for good, nothing is forwarded any more and
  nobody is told: each endpoint finds out from its own timeouts (keepalive, read timeout)
  and closes. New connections while down are reset at once.
- ``"stall"``: nothing moves while the link is down, nothing is lost; the connections carry
  on when it comes back (TCP retransmission rides out a short outage). New connections wait.

Counters (``stats()``): bytes delivered each way, connections accepted, refused, cut. All
loopback; every task ends on ``stop()``. ``LinkProxy`` runs on the caller's event loop;
``ThreadedLinkProxy`` runs one on its own thread for synchronous tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Coroutine, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeVar

CutMode = Literal["reset", "blackhole", "stall"]
T = TypeVar("T")

READ_SIZE = 16 * 1024
MIN_PIECE = 256  # smallest piece the throttle lets through at once


@dataclass
class LinkStats:
    bytes_up: int = 0  # client -> server, delivered to the server
    bytes_down: int = 0  # server -> client, delivered to the client
    connections: int = 0  # accepted and forwarded
    refused: int = 0  # turned away while the link was down
    cut_connections: int = 0  # open connections ended (or silenced) by a cut
    cuts: int = 0  # cut events
    active: int = 0  # open connection pairs now


def flap_schedule(seed: int, mean_up: float, down: tuple[float, float]
                  ) -> Iterator[tuple[float, float]]:
    """(seconds up, seconds down) pairs, for ever: up times exponential with mean
    ``mean_up``, down times uniform in ``down``. The same seed gives the same schedule."""
    rng = random.Random(seed)
    while True:
        yield rng.expovariate(1.0 / mean_up), rng.uniform(*down)


class Throttle:
    """One direction of the link: at most ``rate`` bytes per second, first come first served
    (``rate`` None or 0: no limit). ``rate`` may change while in use."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._lock = asyncio.Lock()
        self._free_at = 0.0  # loop time at which the link is idle again

    def piece(self) -> int:
        """How many bytes go through in one step (~1/50 s of the rate)."""
        if not self.rate:
            return READ_SIZE
        return max(MIN_PIECE, int(self.rate / 50))

    async def send(self, n: int) -> None:
        """Wait until ``n`` bytes have been clocked out onto the link."""
        if not self.rate:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            start = max(loop.time(), self._free_at)
            self._free_at = start + n / self.rate
            delay = self._free_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)


class _Pipe:
    """One direction of one connection: read, hold for the latency, clock out, write."""

    def __init__(self, link: LinkProxy, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, throttle: Throttle, down: bool) -> None:
        self.link, self.reader, self.writer = link, reader, writer
        self.throttle, self.down = throttle, down
        self.queue: deque[tuple[float, bytes]] = deque()
        self.queued = 0
        self.changed = asyncio.Event()  # something was queued, or the queue shrank

    async def pump_in(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while self.queued >= self.link.buffer_bytes and not conn.silenced:
                self.changed.clear()
                await self.changed.wait()
            data = await self.reader.read(READ_SIZE)
            if conn.silenced:  # a black hole swallows everything, says nothing
                if not data:
                    return
                continue
            if not self.down:
                self.link.note_up(data)
            self.queue.append((loop.time() + self.link.latency, data))
            self.queued += len(data)
            self.changed.set()
            if not data:
                return

    async def pump_out(self, conn: _Conn) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.queue:
                if conn.silenced:
                    return
                self.changed.clear()
                await self.changed.wait()
            due, data = self.queue[0]
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await self.link.wait_up()
            piece = data[: self.throttle.piece()]
            if piece:
                await self.throttle.send(len(piece))
                await self.link.wait_up()
            if conn.silenced or not self.queue:
                return
            if not data:
                self.queue.popleft()
                if self.writer.can_write_eof():
                    self.writer.write_eof()
                return
            self.writer.write(piece)
            await self.writer.drain()
            if conn.silenced or not self.queue:
                return
            rest = data[len(piece):]
            if rest:
                self.queue[0] = (due, rest)
            else:
                self.queue.popleft()
            self.queued -= len(piece)
            self.changed.set()
            if self.down:
                self.link.counters.bytes_down += len(piece)
                self.link.note_down()
            else:
                self.link.counters.bytes_up += len(piece)


class _Conn:
    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.silenced = False
        self.task: asyncio.Task[None] | None = None
        self.pipes: list[_Pipe] = []

    def silence(self) -> None:
        self.silenced = True
        for p in self.pipes:
            p.queue.clear()
            p.queued = 0
            p.changed.set()

    def reset(self) -> None:
        for w in (self.client, self.server):
            if w is not None:
                _abort(w)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with an RST (SO_LINGER 0) rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class LinkProxy:
    """Listens on ``host:port`` (0: a free port) and forwards to ``target``."""

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1",
                 rate: float | None = None, latency: float = 0.0,
                 buffer_bytes: int | None = None, seed: int = 0,
                 host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.up_throttle = Throttle(rate)
        self.down_throttle = Throttle(rate)
        self.latency = latency
        # what the link holds in flight per direction and connection before TCP pushes back
        self.buffer_bytes = buffer_bytes or max(64 * 1024, int((rate or 0) * latency * 2))
        self.seed = seed
        self.counters = LinkStats()
        self.mode: CutMode = "reset"
        self._up = asyncio.Event()
        self._up.set()
        self._conns: set[_Conn] = set()
        self._server: asyncio.Server | None = None
        self._timers: set[asyncio.Task[None]] = set()
        self._flapper: asyncio.Task[None] | None = None
        self._cut_down_at: int | None = None
        self._cut_down_mode: CutMode = "reset"
        self._cut_pattern: bytes | None = None
        self._cut_arm: bytes | None = None
        self._cut_times = 0
        self._cut_n = 0
        self.flaps: list[tuple[float, float]] = []  # (up, down) seconds, as flapped so far

    # ---------------------------------------------------------------- settings

    @property
    def rate(self) -> float | None:
        return self.up_throttle.rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        self.up_throttle.rate = self.down_throttle.rate = value

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def stats(self) -> LinkStats:
        self.counters.active = len(self._conns)
        return LinkStats(**asdict(self.counters))

    # ---------------------------------------------------------------- life

    async def start(self, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, reset every connection, end every task."""
        self.stop_flapping()
        for t in list(self._timers):
            t.cancel()
        if self._server is not None:
            self._server.close()
        for c in list(self._conns):
            c.reset()
        tasks = {c.task for c in self._conns if c.task is not None}
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=2.0)
            for t in stuck:
                t.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        await asyncio.gather(*self._timers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # ---------------------------------------------------------------- cuts

    def cut(self, mode: CutMode = "reset") -> int:
        """End (``reset``) or silence (``blackhole``) every open connection now; returns how
        many. ``stall`` has no effect on its own (see ``hold_down``)."""
        self.counters.cuts += 1
        if mode == "stall":
            return 0
        n = 0
        for c in list(self._conns):
            if c.silenced:
                continue
            n += 1
            if mode == "reset":
                c.reset()
            else:
                c.silence()
        self.counters.cut_connections += n
        return n

    def hold_down(self, seconds: float | None = None, mode: CutMode = "reset") -> None:
        """Cut now and keep the link down for ``seconds`` (None: until ``come_up``)."""
        self.mode = mode
        self._up.clear()
        self.cut(mode)
        if seconds is not None:
            self._later(seconds, self.come_up)

    def come_up(self) -> None:
        self._up.set()

    def cut_after_down(self, n: int, mode: CutMode = "reset", *,
                       after_up: bytes | None = None, times: int = 1) -> None:
        """Cut once ``n`` more bytes have been delivered towards the clients; with
        ``after_up``, counting starts when a client sends bytes containing it (e.g. an HTTP
        request line: the cut then falls ``n`` bytes into that answer). ``times``: arm again
        after each cut, that many cuts in all."""
        self._cut_times = times
        self._cut_down_mode = mode
        self._cut_pattern = self._cut_arm = after_up
        self._cut_down_at = None if after_up else self.counters.bytes_down + n
        self._cut_n = n

    def note_up(self, data: bytes) -> None:
        if self._cut_pattern is not None and self._cut_pattern in data:
            self._cut_pattern = None
            self._cut_down_at = self.counters.bytes_down + self._cut_n

    def note_down(self) -> None:
        if self._cut_down_at is not None and self.counters.bytes_down >= self._cut_down_at:
            self._cut_down_at = None
            self.cut(self._cut_down_mode)
            self._cut_times -= 1
            if self._cut_times > 0:
                self.cut_after_down(self._cut_n, self._cut_down_mode, after_up=self._cut_arm,
                                    times=self._cut_times)

    def flap(self, mean_up: float, down: tuple[float, float], mode: CutMode = "reset",
             seed: int | None = None) -> None:
        """Go down and up at random (``flap_schedule``) until ``stop_flapping``."""
        self.stop_flapping()
        schedule = flap_schedule(self.seed if seed is None else seed, mean_up, down)
        self._flapper = asyncio.create_task(self._flap(schedule, mode))

    def stop_flapping(self) -> None:
        """Stop flapping; the link is left up."""
        if self._flapper is not None:
            self._flapper.cancel()
            self._flapper = None
        self.come_up()

    async def _flap(self, schedule: Iterator[tuple[float, float]], mode: CutMode) -> None:
        for up_for, down_for in schedule:
            await asyncio.sleep(up_for)
            self.flaps.append((up_for, down_for))
            self.hold_down(None, mode)
            await asyncio.sleep(down_for)
            self.come_up()

    def _later(self, seconds: float, fn: Any) -> None:
        async def run() -> None:
            await asyncio.sleep(seconds)
            fn()
        t = asyncio.create_task(run())
        self._timers.add(t)
        t.add_done_callback(self._timers.discard)

    async def wait_up(self) -> None:
        if not self._up.is_set():
            await self._up.wait()

    # ---------------------------------------------------------------- forwarding

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        conn = _Conn(cw)
        conn.task = asyncio.current_task()
        if not self._up.is_set() and self.mode != "stall":
            self.counters.refused += 1
            _abort(cw)
            return
        self._conns.add(conn)
        try:
            await self._up.wait()
            await asyncio.sleep(self.latency)  # the handshake crosses the link
            try:
                sr, sw = await asyncio.open_connection(*self.target)
            except OSError:
                _abort(cw)
                return
            conn.server = sw
            self.counters.connections += 1
            up = _Pipe(self, cr, sw, self.up_throttle, down=False)
            down = _Pipe(self, sr, cw, self.down_throttle, down=True)
            conn.pipes = [up, down]
            await asyncio.gather(self._both(up, conn), self._both(down, conn))
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:  # stop(): the end of this handler task, not an error
            pass
        finally:
            self._conns.discard(conn)
            if conn.silenced:
                conn.reset()
            else:
                for w in (cw, conn.server):
                    if w is not None:
                        w.close()

    async def _both(self, pipe: _Pipe, conn: _Conn) -> None:
        """Run a pipe until its side is done; a reset or a lost peer ends the connection."""
        inp = asyncio.ensure_future(pipe.pump_in(conn))
        out = asyncio.ensure_future(pipe.pump_out(conn))
        try:
            await out
            await inp
        except (ConnectionError, OSError):
            if not conn.silenced:  # a black hole tells the other side nothing
                conn.reset()
        finally:
            inp.cancel()
            out.cancel()
            await asyncio.gather(inp, out, return_exceptions=True)


class ThreadedLinkProxy:
    """A ``LinkProxy`` on an event loop of its own thread, for synchronous callers:
    ``with ThreadedLinkProxy(port, rate=32_000, latency=0.3) as link: ... link.cut()``."""

    def __init__(self, target_port: int, **kw: Any) -> None:
        self._kw = kw
        self._target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="link-proxy",
                                        daemon=True)
        self.proxy: LinkProxy | None = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def _call(self, fn: Any, *args: Any) -> Any:
        async def call() -> Any:
            return fn(*args)
        return self._run(call())

    def start(self, port: int = 0) -> ThreadedLinkProxy:
        self._thread.start()

        async def make() -> LinkProxy:
            p = LinkProxy(self._target_port, **self._kw)
            await p.start(port)
            return p
        self.proxy = self._run(make())
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self._run(self.proxy.stop())
            self.proxy = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> ThreadedLinkProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def p(self) -> LinkProxy:
        assert self.proxy is not None, "proxy not started"
        return self.proxy

    @property
    def port(self) -> int:
        return self.p.port

    def stats(self) -> LinkStats:
        return self._call(self.p.stats)  # type: ignore[no-any-return]

    def cut(self, mode: CutMode = "reset") -> int:
        return self._call(self.p.cut, mode)  # type: ignore[no-any-return]

    def hold_down(self, seconds: float | None = None, mode: CutMode = "reset") -> None:
        self._call(self.p.hold_down, seconds, mode)

    def come_up(self) -> None:
        self._call(self.p.come_up)

    def is_up(self) -> bool:
        return self._call(lambda: self.p.is_up)  # type: ignore[no-any-return]

    def cut_after_down(self, n: int, mode: CutMode = "reset", *,
                       after_up: bytes | None = None, times: int = 1) -> None:
        def arm() -> None:
            self.p.cut_after_down(n, mode, after_up=after_up, times=times)
        self._call(arm)

    def flap(self, mean_up: float, down: tuple[float, float], mode: CutMode = "reset",
             seed: int | None = None) -> None:
        self._call(self.p.flap, mean_up, down, mode, seed)

    def stop_flapping(self) -> None:
        self._call(self.p.stop_flapping)

    def flaps(self) -> list[tuple[float, float]]:
        return self._call(lambda: list(self.p.flaps))  # type: ignore[no-any-return]

    def set_rate(self, rate: float | None) -> None:
        def setter() -> None:
            self.p.rate = rate
        self._call(setter)
