"""Reading an HTML form body without letting the parser's faults become 500s (issue 16).

aiohttp's ``request.post()`` raises ValueError, LookupError, AssertionError, UnicodeError
and more for bodies it cannot parse (multipart without a name or boundary, cut-off bodies,
non-UTF-8 bytes, ``charset=bogus``, odd-length UTF-16): all of them are the client's fault.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import MultiDictProxy

log = logging.getLogger(__name__)

FormData = MultiDictProxy[str | bytes | bytearray | web.FileField]


async def read_form(request: web.Request) -> FormData:
    """``request.post()``, or 400 for a body that is not a readable form."""
    try:
        return await request.post()
    except (asyncio.CancelledError, web.HTTPException):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, the body was bad
        log.info("unreadable form body on %s %s: %s", request.method, request.path,
                 type(exc).__name__)
        raise web.HTTPBadRequest(text="the form body cannot be read") from None
