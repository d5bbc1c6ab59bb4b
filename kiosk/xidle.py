"""How long the whole X display has been idle (XScreenSaver extension, via ctypes): while a
citizen works in a launched browser the kiosk's own window sees no touches."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from functools import cache
from typing import Any

log = logging.getLogger(__name__)


class _Info(ctypes.Structure):
    _fields_ = [("window", ctypes.c_ulong), ("state", ctypes.c_int), ("kind", ctypes.c_int),
                ("til_or_since", ctypes.c_ulong), ("idle", ctypes.c_ulong),
                ("event_mask", ctypes.c_ulong)]


@cache
def _open() -> tuple[Any, Any, Any, Any] | None:
    try:
        xlib = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
        xss = ctypes.cdll.LoadLibrary(ctypes.util.find_library("Xss") or "libXss.so.1")
    except OSError:
        log.info("libXss not found: idle time counts touches on the kiosk window only")
        return None
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultRootWindow.restype = ctypes.c_ulong
    xlib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    xss.XScreenSaverAllocInfo.restype = ctypes.POINTER(_Info)
    xss.XScreenSaverQueryInfo.argtypes = [ctypes.c_void_p, ctypes.c_ulong,
                                          ctypes.POINTER(_Info)]
    dpy = xlib.XOpenDisplay(None)
    if not dpy:
        return None
    return xlib, xss, dpy, xss.XScreenSaverAllocInfo()


def x_idle_seconds() -> float | None:
    """Seconds since the last real input on the X display, or None when unknown."""
    handles = _open()
    if handles is None:
        return None
    xlib, xss, dpy, info = handles
    with contextlib.suppress(Exception):
        if xss.XScreenSaverQueryInfo(dpy, xlib.XDefaultRootWindow(dpy), info):
            return float(info.contents.idle) / 1000.0
    return None
