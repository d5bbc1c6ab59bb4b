"""API tokens for programs (CONTRACT §1 ``cac-hub add-token``, §9) and the guard of the API.

A token is 256 random bits (``common.passwords.new_token``); the store keeps only its
SHA-256 (table ``api_tokens``: name, role, hash). A slow salted hash is for passwords people
choose; a random 256-bit token cannot be guessed from its SHA-256, and a plain digest lets a
request be checked with one indexed lookup instead of one scrypt per request. A second
``add-token`` with the same name replaces the token; ``revoke-token`` deletes it.

``guard`` is the HTTP middleware: every ``/api/v1`` path and ``/metrics`` needs
``Authorization: Bearer <token>`` or a dashboard login cookie, else 401 JSON. Open without
one: the signed content a CAC syncs (catalogue, manifests, blobs: their signatures, not
secrecy, protect them), ``/metrics`` with ``[http] metrics_public = true``.
The guard reads the token table through a cache refreshed at most every
``REFRESH_SECONDS`` (a revoked token stops working within that time).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from common.passwords import new_token
from hub.store import AdminStore, StoreError, open_reader

log = logging.getLogger(__name__)

ROLES = ("viewer", "technician")
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
REFRESH_SECONDS = 1.0
MISS_REFRESH_SECONDS = 0.25  # an unknown token re-reads the table at most this often
REFRESH_WAIT_SECONDS = 2.0  # a request waits this long at most for a re-read
OPEN_PREFIXES = ("/api/v1/content/catalogue", "/api/v1/content/packages/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CookieCheck = Callable[[web.Request], Awaitable["Caller | None"]]


class TokenError(ValueError):
    """A bad token name or role."""


@dataclass(frozen=True)
class Caller:
    """Who a request acts for: a token's name or a dashboard login."""

    name: str
    role: str
    via: str  # "token" or "login"

    @property
    def technician(self) -> bool:
        return self.role == "technician"


CALLER = web.RequestKey("caller", Caller)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def add_token(db: sqlite3.Connection, name: str, role: str, now: float) -> str:
    """Create or replace the token called ``name`` (caller holds a tx); the token itself."""
    if not NAME_RE.fullmatch(name):
        raise TokenError("the name must be 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise TokenError(f"the role must be one of {', '.join(ROLES)}")
    token = new_token()
    db.execute("INSERT INTO api_tokens (name, role, hash, created_at) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (name) DO UPDATE SET role = excluded.role, hash = excluded.hash, "
               "created_at = excluded.created_at", (name, role, digest(token), now))
    return token


def revoke_token(db: sqlite3.Connection, name: str) -> bool:
    """Delete the token called ``name``; True if there was one (caller holds a tx)."""
    return db.execute("DELETE FROM api_tokens WHERE name = ?", (name,)).rowcount > 0


def list_tokens(db: sqlite3.Connection) -> list[tuple[str, str, float]]:
    return [(str(n), str(r), float(c)) for n, r, c in db.execute(
        "SELECT name, role, created_at FROM api_tokens ORDER BY name")]


def _load(db_path: Path, shared: AdminStore | None = None) -> dict[str, tuple[str, str]]:
    """Every token's hash: from ``shared`` (PostgreSQL: any thread), else a SQLite reader."""
    if shared is not None:
        rows = shared.db.execute("SELECT hash, name, role FROM api_tokens").fetchall()
    else:
        with open_reader(db_path) as store:
            rows = store.db.execute("SELECT hash, name, role FROM api_tokens").fetchall()
    return {str(h): (str(n), str(r)) for h, n, r in rows}


class TokenCache:
    """hash -> (name, role), re-read from the store at most every REFRESH_SECONDS."""

    def __init__(self, db_path: Path, shared: AdminStore | None = None) -> None:
        self.db_path, self.shared = db_path, shared
        self._by_hash: dict[str, tuple[str, str]] = {}
        self._loaded_at = -float("inf")
        self._task: asyncio.Future[None] | None = None  # a read of the tokens under way
        self._failing = False

    async def lookup(self, token: str) -> tuple[str, str] | None:
        await self._refresh(REFRESH_SECONDS)
        found = self._by_hash.get(digest(token))
        if found is None:  # perhaps a token made a moment ago: look again, not too often
            await self._refresh(MISS_REFRESH_SECONDS)
            found = self._by_hash.get(digest(token))
        return found

    async def _refresh(self, older_than: float) -> None:
        """Re-read the tokens if older than ``older_than`` s, waiting at most
        REFRESH_WAIT_SECONDS: a store that hangs or is down (a PostgreSQL connect waits) does
        not hold requests up; the read goes on in the background and lands when it ends."""
        if time.monotonic() - self._loaded_at < older_than:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._load())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), REFRESH_WAIT_SECONDS)

    async def _load(self) -> None:
        try:
            self._by_hash = await asyncio.to_thread(_load, self.db_path, self.shared)
            if self._failing:
                log.warning("the API tokens can be read again")
            self._failing = False
        except (StoreError, sqlite3.Error) as exc:
            # the tokens last read stay valid: /metrics and the API answer monitoring
            # through a store outage (when it matters most); a token revoked meanwhile is
            # refused once the store answers again
            if not self._failing:  # once per outage, not at every refresh
                log.error("cannot read the API tokens (%d known ones kept): %s",  # noqa: TRY400
                          len(self._by_hash), exc)
            self._failing = True
        self._loaded_at = time.monotonic()


def _needs_auth(path: str, metrics_public: bool) -> bool:
    if path == "/metrics":
        return not metrics_public
    if path != "/api/v1" and not path.startswith("/api/v1/"):
        return False
    return not path.startswith(OPEN_PREFIXES)


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": "unauthorized", "message": message}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="cac-hub"'})


def bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def make_guard(cache: TokenCache, cookie_check: CookieCheck | None,
               metrics_public: bool) -> Middleware:
    """The middleware (see the module doc)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _needs_auth(request.path, metrics_public):
            return await handler(request)
        token = bearer(request)
        caller: Caller | None = None
        if token is not None:
            found = await cache.lookup(token)
            if found is None:
                return _unauthorized("unknown or revoked token")
            caller = Caller(found[0], found[1], "token")
        elif cookie_check is not None:
            caller = await cookie_check(request)
        if caller is None:
            return _unauthorized("send Authorization: Bearer <token> (cac-hub add-token) "
                                 "or log in to the dashboard")
        request[CALLER] = caller
        return await handler(request)

    return guard
