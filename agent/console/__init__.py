"""The operator console: server-rendered pages at the CAC counter, mounted on the agent.

``setup_console(app)`` mounts it at ``/console/`` (``/`` redirects there) on the agent's
application, sharing its service and executor. See ``core`` for cookies and CSRF.

Roles: an *operator* runs the counter (sessions, vouchers and voids, station lock/unlock
and messages, the day close); a *manager* also edits the tariff, manages operator accounts
and reads the audit trail.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from agent.console import views_grid, views_manager, views_money, views_till
from agent.console.core import (
    CSP,
    HERE,
    PREFIX,
    STATE,
    ConsoleState,
    env_secure_cookies,
    make_env,
    new_secret,
)
from agent.edge import EXECUTOR, SERVICE

__all__ = ["setup_console"]


@web.middleware
async def _headers(request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if resp.content_type == "text/html":
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


async def _redirect_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PREFIX}/")


async def _stop_streams(app: web.Application) -> None:
    app[STATE].stopping.set()


def setup_console(app: web.Application, *, secure_cookies: bool | None = None) -> None:
    """Mount the console on the agent's app (which holds the service and its executor)."""
    console = web.Application(middlewares=[_headers])
    console[STATE] = ConsoleState(
        service=app[SERVICE], executor=app[EXECUTOR], secret=new_secret(),
        secure_cookies=env_secure_cookies() if secure_cookies is None else secure_cookies,
        env=make_env())
    console.add_routes(views_grid.routes)
    console.add_routes(views_money.routes)
    console.add_routes(views_till.routes)
    console.add_routes(views_manager.routes)
    console.router.add_static("/static/", HERE / "static", append_version=False)
    console.on_shutdown.append(_stop_streams)
    app.add_subapp(PREFIX, console)
    app.router.add_get("/", _redirect_home)
