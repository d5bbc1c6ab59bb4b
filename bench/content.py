"""Content sync figures, each beside its baseline measured in the same run.

1. Re-sync after one file of a 100-file package changed: bytes on the wire (through a
   counting loopback proxy) beside the package size.
2. Download throughput of the agent's cache (resumable download, sha256, fsync, atomic
   install) beside a plain HTTP download of the same file to disk and a plain file copy.

Run: ``.venv/bin/python bench/content.py [--mb 200] [--files 100] [--file-kb 50]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from agent.clock import SystemClock  # noqa: E402
from agent.config import ContentConfig  # noqa: E402
from agent.content import ContentCache  # noqa: E402
from hub.content import setup as hub_setup  # noqa: E402


class CountingProxy:
    def __init__(self, target: int) -> None:
        self.target = target
        self.down = 0
        self.up = 0
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        hr, hw = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter, down: bool) -> None:
            while data := await r.read(65536):
                if down:
                    self.down += len(data)
                else:
                    self.up += len(data)
                w.write(data)
                await w.drain()
            w.close()

        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.gather(pipe(cr, hw, False), pipe(hr, cw, True))

    async def stop(self) -> None:
        self.server.close()


def write_package(d: Path, pid: str, files: dict[str, bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    (d / "manifest.json").write_text(f'{{"id": "{pid}", "title": "bench", "language": "fr"}}')
    return d


def cache_for(root: Path, url: str) -> ContentCache:
    cfg = ContentConfig(hub_url=url, quota_mb=100_000, reserve_mb=0)
    cache = ContentCache(cfg, root, ZoneInfo("UTC"), SystemClock().now)
    cache.load()
    return cache


async def main(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-content-"))
    try:
        app = web.Application()
        store = hub_setup(app, tmp / "hub")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        proxy = CountingProxy(port)
        await proxy.start()

        # 1. re-sync after one changed file
        files = {f"f{i:03d}.bin": os.urandom(args.file_kb * 1024) for i in range(args.files)}
        size = sum(len(v) for v in files.values())
        store.add(write_package(tmp / "src" / "pkg", "pkg", files))
        cache = cache_for(tmp / "agent1", f"http://127.0.0.1:{proxy.port}")
        st = await cache.sync()
        assert st["error"] is None, st
        first = proxy.down + proxy.up
        proxy.down = proxy.up = 0
        st = await cache.sync()
        nothing = proxy.down + proxy.up
        files["f042.bin"] = os.urandom(args.file_kb * 1024)
        store.add(write_package(tmp / "src" / "pkg", "pkg", files))
        proxy.down = proxy.up = 0
        st = await cache.sync()
        assert st["error"] is None and st["installed"] == 1, st
        resync = proxy.down + proxy.up
        if cache._session is not None:
            await cache._session.close()
        print(f"package: {args.files} files, {size:,} bytes")
        print(f"  first sync on the wire:            {first:>12,} bytes "
              f"({first / size:.3f} x package)")
        print(f"  re-sync, nothing changed:          {nothing:>12,} bytes (one 304)")
        print(f"  re-sync, 1 of {args.files} files changed:    {resync:>12,} bytes "
              f"({resync / size:.3%} of the package; one file = "
              f"{args.file_kb * 1024:,} bytes)")

        # 2. throughput: a hub of its own holding only the big file, so the cache's figure
        # is the same 200 MB as the baselines'; best of --rounds, interleaved
        app2 = web.Application()
        store2 = hub_setup(app2, tmp / "hub2")
        runner2 = web.AppRunner(app2, access_log=None)
        await runner2.setup()
        await web.TCPSite(runner2, "127.0.0.1", 0).start()
        direct = f"http://127.0.0.1:{runner2.addresses[0][1]}"
        big = tmp / "src" / "big" / "big.bin"
        big.parent.mkdir(parents=True)
        with big.open("wb") as f:
            for _ in range(args.mb):
                f.write(os.urandom(1 << 20))
        nbytes = args.mb << 20
        store2.add(write_package(big.parent, "big", {}))
        blob = next(p for p in (tmp / "hub2" / "blobs").glob("*/*")
                    if p.stat().st_size == nbytes)
        t_copy = t_plain = t_cache = float("inf")
        for r in range(args.rounds):
            t0 = time.perf_counter()
            shutil.copyfile(big, tmp / "copy.bin")
            with (tmp / "copy.bin").open("rb+") as f:
                os.fsync(f.fileno())
            t_copy = min(t_copy, time.perf_counter() - t0)

            async with aiohttp.ClientSession() as s:
                t0 = time.perf_counter()
                async with s.get(f"{direct}/content/blobs/{blob.name}",
                                 headers={"Accept-Encoding": "identity"}) as resp:
                    with (tmp / "plain.bin").open("wb") as f:  # noqa: ASYNC230 - baseline
                        async for chunk in resp.content.iter_chunked(1 << 16):
                            f.write(chunk)
                t_plain = min(t_plain, time.perf_counter() - t0)

            cache2 = cache_for(tmp / f"agent2-{r}", direct)
            t0 = time.perf_counter()
            st = await cache2.sync()
            t_cache = min(t_cache, time.perf_counter() - t0)
            assert st["error"] is None and "big" in cache2.installed, st
            if cache2._session is not None:
                await cache2._session.close()
            shutil.rmtree(tmp / f"agent2-{r}", ignore_errors=True)
        await runner2.cleanup()
        mbs = args.mb
        print(f"throughput, one {mbs} MB file over loopback:")
        print(f"  agent cache sync (sha256, fsync, atomic install): {mbs / t_cache:8.1f} MB/s")
        print(f"  plain HTTP GET to a file (no checks):             {mbs / t_plain:8.1f} MB/s")
        print(f"  plain file copy (shutil.copyfile + fsync):        {mbs / t_copy:8.1f} MB/s")
        print(f"cache fill = {t_plain / t_cache:.0%} of the plain HTTP GET (goal >= 60%), "
              f"best of {args.rounds}")
        await proxy.stop()
        await runner.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200, help="size of the throughput file (MB)")
    p.add_argument("--files", type=int, default=100)
    p.add_argument("--file-kb", type=int, default=50)
    p.add_argument("--rounds", type=int, default=3, help="throughput runs (best is kept)")
    sys.exit(asyncio.run(main(p.parse_args())))
