"""`GET /api/v1`: a small JSON index of a program's HTTP API, read off its router, so the
list of endpoints can never drift from what the program really serves (CONTRACT §2)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

API_PREFIX = "/api/v1"


def api_index(app: web.Application, program: str, version: str,
              links: dict[str, str]) -> dict[str, Any]:
    """The index body: program, version, `links` (pages for people: console, dashboard) and
    every route under /api/v1 with its methods, sorted by path."""
    methods: dict[str, set[str]] = {}
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith(API_PREFIX + "/") and route.method not in ("HEAD", "OPTIONS"):
            methods.setdefault(path, set()).add(route.method)
    return {
        "program": program,
        "version": version,
        "links": links,
        "endpoints": [{"path": p, "methods": sorted(m)} for p, m in sorted(methods.items())],
    }


def add_index_route(app: web.Application, program: str, version: str,
                    links: dict[str, str]) -> None:
    """Serve the index at /api/v1 and /api/v1/ (built once, at the first request, when every
    route of the app is registered)."""
    cache: dict[str, Any] = {}

    async def index(request: web.Request) -> web.Response:
        if not cache:
            cache.update(api_index(request.app, program, version, links))
        return web.json_response(cache)

    app.router.add_get(API_PREFIX, index)
    app.router.add_get(API_PREFIX + "/", index)
