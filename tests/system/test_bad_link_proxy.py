"""The bad-link proxy (tests/netproxy.py) does what it says: rate, latency, cuts, flaps.

Real sockets on 127.0.0.1 through the proxy to a real asyncio server. Time bounds are lower
bounds (a link cannot be faster than its rate or its latency); the upper bounds only catch a
proxy that does not throttle at all or stalls for ever, with a wide margin for a loaded machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from netproxy import LinkProxy, ThreadedLinkProxy, flap_schedule

DEADLINE = 10.0


class Server:
    """Echo (``echo``) or sink-and-source: what it received, per connection; with
    ``send`` it sends that many bytes to each new client."""

    def __init__(self, *, echo: bool = True, send: int = 0) -> None:
        self.echo, self.send = echo, send
        self.received: list[bytearray] = []
        self.closed: list[bool] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        i = len(self.received)
        self.received.append(bytearray())
        self.closed.append(False)
        try:
            if self.send:
                w.write(bytes(itertools.islice(itertools.cycle(range(256)), self.send)))
            while data := await r.read(65536):
                self.received[i] += data
                if self.echo:
                    w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed[i] = True
            w.close()


@contextlib.asynccontextmanager
async def link(target: int, **kw: Any) -> AsyncIterator[LinkProxy]:
    p = LinkProxy(target, **kw)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def until(cond: Callable[[], bool | Awaitable[bool]], what: str,
                wait: float = DEADLINE) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


async def read_exactly(r: asyncio.StreamReader, n: int) -> bytes:
    return await asyncio.wait_for(r.readexactly(n), DEADLINE)


def payload(n: int) -> bytes:
    return bytes(itertools.islice(itertools.cycle(range(251)), n))


async def test_forwards_both_ways_byte_for_byte_and_counts() -> None:
    async with Server() as srv, link(srv.port) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        data = payload(200_000)
        w.write(data)
        assert await read_exactly(r, len(data)) == data
        w.close()
        await until(lambda: srv.closed == [True], "the server to see the close")
        st = p.stats()
        assert (st.bytes_up, st.bytes_down, st.connections) == (len(data), len(data), 1)
        assert bytes(srv.received[0]) == data


async def test_throttles_to_the_rate_shared_by_all_connections() -> None:
    rate = 64_000
    async with Server(echo=False) as srv, link(srv.port, rate=rate) as p:
        conns = [await asyncio.open_connection("127.0.0.1", p.port) for _ in range(2)]
        t0 = time.monotonic()
        for _, w in conns:
            w.write(payload(40_000))  # 80 kB in all: 1.25 s at 64 kB/s
        await until(lambda: sum(map(len, srv.received)) == 80_000, "both uploads", 20)
        took = time.monotonic() - t0
        for _, w in conns:
            w.close()
    # one 1/50 s piece per connection may pass before the clock catches up
    assert took >= 80_000 / rate - 2 * 0.02 - 0.05, took
    assert took < 80_000 / rate * 4, took  # it does not stall either


async def test_throttles_downloads_too_and_the_rate_can_change() -> None:
    async with Server(echo=False, send=48_000) as srv, link(srv.port, rate=32_000) as p:
        t0 = time.monotonic()
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        got = await read_exactly(r, 16_000)
        half = time.monotonic() - t0
        p.rate = None  # the link gets fast: the rest comes at once
        t1 = time.monotonic()
        got += await read_exactly(r, 32_000)
        rest = time.monotonic() - t1
        w.close()
    assert got == bytes(itertools.islice(itertools.cycle(range(256)), 48_000))
    assert half >= 16_000 / 32_000 - 0.05, half
    assert rest < half, (half, rest)


async def test_adds_the_latency_each_way() -> None:
    latency = 0.25
    async with Server() as srv, link(srv.port, latency=latency) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"warm")
        await read_exactly(r, 4)
        t0 = time.monotonic()
        w.write(b"ping")
        await until(lambda: bytes(srv.received[0]).endswith(b"ping"), "one way")
        one_way = time.monotonic() - t0
        await read_exactly(r, 4)
        round_trip = time.monotonic() - t0
        w.close()
    assert one_way >= latency - 0.01, one_way
    assert round_trip >= 2 * latency - 0.01, round_trip
    assert round_trip < 2 * latency + 2.0, round_trip


async def test_cut_resets_both_ends_and_hold_down_turns_new_connections_away() -> None:
    async with Server() as srv, link(srv.port) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"hello")
        await read_exactly(r, 5)
        p.hold_down(0.5)
        assert not p.is_up
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await read_exactly(r, 1)
        await until(lambda: srv.closed == [True], "the server to see the cut")
        w.close()
        # while down: a new connection is reset at once
        r2, w2 = await asyncio.open_connection("127.0.0.1", p.port)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await read_exactly(r2, 1)
        w2.close()
        assert p.stats().refused >= 1
        await until(lambda: p.is_up, "the link back after 0.5 s")
        r3, w3 = await asyncio.open_connection("127.0.0.1", p.port)
        w3.write(b"again")
        assert await read_exactly(r3, 5) == b"again"
        w3.close()
        st = p.stats()
        assert (st.cuts, st.cut_connections, st.connections) == (1, 1, 2)


async def test_hold_down_without_a_limit_lasts_until_come_up() -> None:
    async with Server() as srv, link(srv.port) as p:
        p.hold_down(None)
        await asyncio.sleep(0.3)
        assert not p.is_up
        p.come_up()
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"x")
        assert await read_exactly(r, 1) == b"x"
        w.close()


async def test_stall_loses_nothing_and_the_connection_survives() -> None:
    async with Server() as srv, link(srv.port) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"before")
        await read_exactly(r, 6)
        p.hold_down(None, mode="stall")
        w.write(b"during")
        await asyncio.sleep(0.3)
        assert bytes(srv.received[0]) == b"before"  # nothing crosses a down link
        # a new connection waits for the link instead of failing
        r2, w2 = await asyncio.open_connection("127.0.0.1", p.port)
        w2.write(b"new")
        p.come_up()
        assert await read_exactly(r, 6) == b"during"
        assert await read_exactly(r2, 3) == b"new"
        assert srv.closed == [False, False]
        w.close()
        w2.close()


async def test_blackhole_swallows_everything_and_tells_nobody() -> None:
    async with Server() as srv, link(srv.port) as p:
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"hi")
        await read_exactly(r, 2)
        assert p.cut("blackhole") == 1
        w.write(b"lost")
        await w.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(r.read(1), 0.5)  # no data, no close, no reset
        assert bytes(srv.received[0]) == b"hi"
        assert srv.closed == [False]
        # the link itself still works for new connections
        r2, w2 = await asyncio.open_connection("127.0.0.1", p.port)
        w2.write(b"ok")
        assert await read_exactly(r2, 2) == b"ok"
        w.close()
        w2.close()


async def test_cut_after_down_cuts_a_download_in_the_middle() -> None:
    async with Server(echo=False, send=200_000) as srv, link(srv.port, rate=400_000) as p:
        p.cut_after_down(50_000)
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        got = bytearray()
        with contextlib.suppress(ConnectionError):
            while data := await asyncio.wait_for(r.read(65536), DEADLINE):
                got += data
        w.close()
        st = p.stats()
        assert st.cuts == 1
        assert 50_000 <= st.bytes_down <= 50_000 + p.down_throttle.piece()
        assert len(got) <= st.bytes_down < 200_000


async def test_cut_after_down_can_wait_for_a_request() -> None:
    async with Server() as srv, link(srv.port, rate=100_000) as p:
        p.cut_after_down(3000, after_up=b"GET /big")
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(payload(5000))  # echoed whole: the trigger is not armed yet
        assert await read_exactly(r, 5000) == payload(5000)
        w.write(b"GET /big" + payload(8000))
        got = bytearray()
        with contextlib.suppress(ConnectionError):
            while data := await asyncio.wait_for(r.read(65536), DEADLINE):
                got += data
        w.close()
        assert p.stats().cuts == 1
        assert 5000 + 3000 <= p.stats().bytes_down <= 5000 + 3000 + p.down_throttle.piece()
        assert len(got) < 8008


def test_flap_schedule_is_seeded() -> None:
    a = list(itertools.islice(flap_schedule(7, 5.0, (1.0, 3.0)), 20))
    b = list(itertools.islice(flap_schedule(7, 5.0, (1.0, 3.0)), 20))
    c = list(itertools.islice(flap_schedule(8, 5.0, (1.0, 3.0)), 20))
    assert a == b
    assert a != c
    assert all(up > 0 and 1.0 <= down <= 3.0 for up, down in a)


async def test_flapping_cuts_connections_at_random_following_the_seed() -> None:
    async with Server() as srv, link(srv.port, seed=3) as p:
        p.flap(mean_up=0.2, down=(0.05, 0.1))
        await until(lambda: p.stats().cuts >= 3, "three flaps")
        p.stop_flapping()
        assert p.is_up
        expected = list(itertools.islice(flap_schedule(3, 0.2, (0.05, 0.1)), len(p.flaps)))
        assert p.flaps == expected
        r, w = await asyncio.open_connection("127.0.0.1", p.port)
        w.write(b"still works")
        assert await read_exactly(r, 11) == b"still works"
        w.close()


def test_the_threaded_proxy_serves_synchronous_callers() -> None:
    import socket

    async def serve() -> None:
        async with Server() as srv:
            port_box.append(srv.port)
            await stop.wait()

    port_box: list[int] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    import threading
    t = threading.Thread(target=loop.run_until_complete, args=(serve(),))
    t.start()
    try:
        deadline = time.monotonic() + DEADLINE
        while not port_box and time.monotonic() < deadline:
            time.sleep(0.01)
        with ThreadedLinkProxy(port_box[0], latency=0.05) as p:
            with socket.create_connection(("127.0.0.1", p.port), timeout=DEADLINE) as s:
                s.sendall(b"sync")
                assert s.recv(4) == b"sync"
            assert p.stats().bytes_up == 4
            p.hold_down(None)
            assert not p.is_up()
            p.come_up()
            assert p.is_up()
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(DEADLINE)
        loop.close()
