"""Content tests: a real hub content server, a byte-counting TCP proxy that can cut or corrupt,
and agents with a content cache (fixtures are registered by tests/content/conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agent_support import Agent, config_dict, start_agent
from aiohttp import web

import agent.content as agent_content
from hub.content import ContentStore
from hub.content import setup as hub_setup

REPO = Path(__file__).resolve().parents[1]
STARTER = REPO / "content"


@pytest.fixture(autouse=True)
def _no_background_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests drive syncs themselves; retries happen at once."""
    monkeypatch.setattr(agent_content, "STARTUP_DELAY_SECONDS", 3600.0)
    monkeypatch.setattr(agent_content, "RETRY_BASE_SECONDS", 0.01)


def make_package(root: Path, pid: str, files: dict[str, bytes], *, title: str = "T",
                 language: str = "fr") -> Path:
    d = root / pid
    d.mkdir(parents=True, exist_ok=True)
    for p in d.rglob("*"):
        if p.is_file():
            p.unlink()
    for name, data in files.items():
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(data)
    (d / "manifest.json").write_text(json.dumps({"id": pid, "title": title,
                                                 "language": language}))
    return d


@dataclass
class Hub:
    store: ContentStore
    port: int
    runner: web.AppRunner
    log: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_hub(root: Path, port: int = 0, signer: Any = None) -> Hub:
    log: list[tuple[str, str, int, str | None]] = []

    async def record(request: web.Request, resp: web.StreamResponse) -> None:
        log.append((request.method, request.path, resp.status, request.headers.get("Range")))

    app = web.Application()
    app.on_response_prepare.append(record)
    store = hub_setup(app, root, signer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    port = runner.addresses[0][1]
    return Hub(store, port, runner, log)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[Hub]:
    h = await start_hub(tmp_path / "hub-content")
    yield h
    await h.stop()


class Proxy:
    """Forwards 127.0.0.1:port to the hub, counting bytes; can cut a blob download after N
    body-and-header bytes, or flip one byte of a blob body (each once)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.down = 0  # bytes hub -> agent
        self.up = 0
        self.cut_after: int | None = None
        self.flip_at: int | None = None
        self.server: asyncio.Server | None = None
        self.port = 0
        self.cuts = 0
        self.flips = 0
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in list(self._conns):
                w.close()
            await self.server.wait_closed()
            self.server = None

    def reset_counts(self) -> None:
        self.down = self.up = 0

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            hr, hw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.close()
            return
        self._conns.update((cw, hw))
        state: dict[str, Any] = {"blob": False, "seen": 0, "body_at": None}

        async def upstream() -> None:
            while data := await cr.read(65536):
                self.up += len(data)
                if b"GET /content/blobs/" in data:
                    state.update(blob=True, seen=0, body_at=None)
                hw.write(data)
                await hw.drain()
            hw.close()

        async def downstream() -> None:
            while data := await hr.read(65536):
                if state["blob"]:
                    buf = bytearray(data)
                    if state["body_at"] is None:
                        end = bytes(buf).find(b"\r\n\r\n")
                        if end >= 0:
                            state["body_at"] = state["seen"] + end + 4
                    if self.flip_at is not None and state["body_at"] is not None:
                        pos = state["body_at"] + self.flip_at - state["seen"]
                        if 0 <= pos < len(buf):
                            buf[pos] ^= 0xFF
                            self.flip_at = None
                            self.flips += 1
                    if self.cut_after is not None and state["seen"] + len(buf) > self.cut_after:
                        keep = max(0, self.cut_after - state["seen"])
                        self.down += keep
                        cw.write(bytes(buf[:keep]))
                        await cw.drain()
                        self.cut_after = None
                        self.cuts += 1
                        cw.close()  # what was sent arrives, then the connection ends
                        hw.transport.abort()
                        return
                    state["seen"] += len(buf)
                    data = bytes(buf)
                self.down += len(data)
                cw.write(data)
                await cw.drain()
            cw.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (cw, hw):
                w.close()
                self._conns.discard(w)


@pytest.fixture
async def proxy(hub: Hub) -> AsyncIterator[Proxy]:
    p = Proxy(hub.port)
    await p.start()
    yield p
    await p.stop()


AgentFactory = Callable[..., Any]


@pytest.fixture
def agent_factory(tmp_path: Path, aiohttp_client: Any) -> AgentFactory:
    """``await make(hub_url, **content_keys)`` -> (Agent, cache, close)."""

    async def make(hub_url: str | None, data_dir: Path | None = None,
                   **content: Any) -> tuple[Agent, agent_content.ContentCache, Any]:
        d = data_dir or tmp_path / "agent"
        cfg = config_dict(d)
        if hub_url is not None:
            content = {"hub_url": hub_url, **content}
        cfg["content"] = content
        gen = start_agent(d, aiohttp_client, config=cfg)
        a = await gen.__anext__()
        cache = a.client.app[agent_content.CONTENT]

        async def close() -> None:
            await a.client.close()
            with contextlib.suppress(StopAsyncIteration):
                await gen.__anext__()

        return a, cache, close

    return make
