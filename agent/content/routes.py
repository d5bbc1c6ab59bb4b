"""The agent's content routes: ``/content/{package}/{path}`` and the listings."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from agent.content import CONTENT, ContentCache
from agent.content.search import MAX_QUERY_CHARS, QueryError
from agent.content.store import CHUNK
from agent.content_use import is_opened
from agent.edge import COMMANDS, SERVICE, BadRequest, bearer, call, operator, station
from agent.errors import DomainError

MAX_RESULTS = 50

IMMUTABLE_HINT = "no-cache"  # paths are stable but their bytes change with a new version
# Published pages run in an opaque origin of their own (CONTRACT §10): their scripts may run
# (offline lessons use them) but cannot read the console's pages, cookies or storage, and
# what they send the agent is a cross-origin request the console's checks refuse.
SANDBOX = "sandbox allow-scripts allow-forms allow-popups allow-downloads"


async def serve_file(request: web.Request) -> web.StreamResponse:
    """``/content/{package}/{path}``: only a path listed in the installed manifest whose blob
    verified; the request never becomes a file-system path. ETag = sha256, Range, HEAD."""
    cache = request.app[CONTENT]
    entry = cache.lookup(request.match_info["pid"], request.match_info["path"])
    if entry is None and request.match_info["pid"] in cache.installed:
        loop = asyncio.get_running_loop()
        article = await loop.run_in_executor(None, cache.zim_article,
                                             request.match_info["pid"],
                                             request.match_info["path"])
        if article is not None:
            data, mimetype = article
            if request.method == "GET" and is_opened(mimetype):
                request.app[SERVICE].note_content_open(request.match_info["pid"],
                                                       request.match_info["path"])
            return web.Response(body=data, headers={
                "Content-Type": mimetype, "Cache-Control": IMMUTABLE_HINT,
                "X-Content-Type-Options": "nosniff"})
    if entry is None:
        return web.json_response({"error": "not_found", "message": "no such content"},
                                 status=404)
    sha, size = entry["sha256"], entry["size"]
    etag = f'"{sha}"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE_HINT, "Accept-Ranges": "bytes",
               "X-Content-Type-Options": "nosniff", "Content-Security-Policy": SANDBOX}
    inm = request.headers.get("If-None-Match")
    if inm and any(t.strip() in (etag, "*", f"W/{etag}") for t in inm.split(",")):
        return web.Response(status=304, headers=headers)
    start, stop, status = 0, size, 200
    if "Range" in request.headers and request.headers.get("If-Range", etag) == etag:
        try:
            rng = request.http_range
        except ValueError:
            rng = None
        if rng is None or (rng.start is not None and rng.start >= size and rng.start >= 0):
            return web.Response(status=416, headers={**headers,
                                                     "Content-Range": f"bytes */{size}"})
        if rng.start is not None and rng.start < 0:
            start, stop = max(0, size + rng.start), size
        else:
            start = rng.start or 0
            stop = min(size, rng.stop if rng.stop is not None else size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    if request.method == "GET" and start == 0 and is_opened(entry["media_type"]):
        request.app[SERVICE].note_content_open(request.match_info["pid"],
                                               request.match_info["path"])
    resp = web.StreamResponse(status=status, headers=headers)
    resp.content_type, _, charset = entry["media_type"].partition("; charset=")
    if charset:
        resp.charset = charset
    resp.content_length = stop - start
    await resp.prepare(request)
    if request.method == "HEAD":
        return resp
    loop = asyncio.get_running_loop()
    with cache.blob_path(sha).open("rb") as f:  # noqa: ASYNC230 - open only; reads below
        pos = start
        while pos < stop:
            chunk = await loop.run_in_executor(None, os.pread, f.fileno(),
                                               min(CHUNK * 4, stop - pos), pos)
            if not chunk:
                break
            await resp.write(chunk)
            pos += len(chunk)
    await resp.write_eof()
    return resp


async def list_operator(request: web.Request) -> web.Response:
    await operator(request)
    cache = request.app[CONTENT]
    return web.json_response({"packages": cache.listing(), "sync": cache.status()})


async def list_station(request: web.Request) -> web.Response:
    await station(request)
    cache = request.app[CONTENT]
    return web.json_response({"packages": cache.listing(), "sync": cache.status()})


async def _reader(request: web.Request) -> None:
    """An operator's token, or a station's token with ``station=ID`` (the kiosk)."""
    token = bearer(request)
    svc = request.app[SERVICE]
    try:
        await call(request, svc.operator_for_token, token)
        return
    except DomainError as exc:
        if exc.code != "unauthorized":
            raise
    sid = request.query.get("station")
    if not sid:
        raise DomainError("unauthorized", "an operator token, or a station token with "
                          "'station=ID' in the query, is required")
    await call(request, svc.station_for_token, token, sid)


async def search(request: web.Request) -> web.Response:
    """``GET /api/v1/content/search?q=TEXT&lang=ar&limit=N``: pages of installed packages,
    best first, each with a snippet, its language and its portal URL (CONTRACT §10: a list of
    ``{"package", "path", "title", "snippet"}``, extended with ``lang`` and ``url``)."""
    await _reader(request)
    q = request.query.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise BadRequest(f"'q' is longer than {MAX_QUERY_CHARS} characters", "bad_field")
    lang = request.query.get("lang") or None
    if lang is not None and (len(lang) > 16 or not lang.replace("-", "").isalnum()):
        raise BadRequest("'lang' must be a language code such as 'ar' or 'fr'", "bad_field")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        raise BadRequest("'limit' must be an integer", "bad_field") from None
    if not 1 <= limit <= MAX_RESULTS:
        raise BadRequest(f"'limit' must be between 1 and {MAX_RESULTS}", "bad_field")
    cache = request.app[CONTENT]
    index = cache.search
    if index is None:
        return web.json_response([])
    loop = asyncio.get_running_loop()
    try:
        hits = await loop.run_in_executor(None, index.search, q, lang, limit)
    except QueryError as exc:
        raise BadRequest(str(exc), "bad_field") from None
    results = []
    for h in hits:
        m = cache.installed.get(h["package"])
        if m is not None and m.get("kind") == "zim":
            entry = m["files"][0]  # an article of the archive: served if the archive is
        else:
            entry = cache.index.get(h["package"], {}).get(h["path"])
        if entry is None or cache.present.get(entry["sha256"]) != entry["size"]:
            continue  # a file that is not served is not offered
        results.append({**h, "url": f"/content/{h['package']}/{h['path']}"})
    return web.json_response(results)


def setup(app: web.Application) -> ContentCache:
    """Give the agent's app its content cache: portal routes, listings, the sync task,
    the ``resync_content`` command and the health hook."""
    svc = app[SERVICE]
    cache = ContentCache(svc.config.content, svc.state_dir, svc.config.tz, svc.clock.now)
    app[CONTENT] = cache
    svc.content_status = cache.status
    app[COMMANDS].register("resync_content", cache.command)
    app.router.add_get("/content/{pid}/{path:.+}", serve_file)
    app.router.add_get("/api/v1/content", list_operator)
    app.router.add_get("/api/v1/content/search", search)
    app.router.add_get("/api/v1/stations/{sid}/content", list_station)
    return cache
