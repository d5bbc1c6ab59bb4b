"""Kivy settings for a public kiosk; must run before anything imports ``kivy.core.window``."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os


def configure_kivy(*, windowed: bool, size: tuple[int, int] = (1280, 800),
                   log_level: str = "warning") -> None:
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "log_level", log_level)
    Config.set("kivy", "pause_on_minimize", "0")
    # one input provider per device: the mouse provider also reports touches through
    # SDL2, and a second touch provider would double them (FIELD-NOTES)
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "allow_screensaver", "0")
    Config.set("graphics", "resizable", "0")
    if windowed:
        Config.set("graphics", "fullscreen", "0")
        Config.set("graphics", "borderless", "0")
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))
    else:
        Config.set("graphics", "fullscreen", "auto")
        Config.set("graphics", "borderless", "1")
        Config.set("graphics", "show_cursor", "0")
        screen = x_screen_size()
        if screen is not None:
            # with no window manager (a bare X server, Xvfb) nobody honours "fullscreen":
            # SDL's window would stay 800x600 in the middle while Kivy lays out the screen's
            # size. Ask for the whole screen at 0,0 ourselves.
            Config.set("graphics", "width", str(screen[0]))
            Config.set("graphics", "height", str(screen[1]))
            Config.set("graphics", "position", "custom")
            Config.set("graphics", "left", "0")
            Config.set("graphics", "top", "0")


def x_screen_size() -> tuple[int, int] | None:
    """The default X screen's size in pixels, or None (no X display, no libX11: Wayland)."""
    if not os.environ.get("DISPLAY"):
        return None
    try:
        xlib = ctypes.cdll.LoadLibrary(ctypes.util.find_library("X11") or "libX11.so.6")
    except OSError:
        return None
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultScreen.argtypes = [ctypes.c_void_p]
    xlib.XDisplayWidth.argtypes = xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = xlib.XOpenDisplay(None)
    if not dpy:
        return None
    try:
        screen = xlib.XDefaultScreen(dpy)
        size = int(xlib.XDisplayWidth(dpy, screen)), int(xlib.XDisplayHeight(dpy, screen))
    finally:
        with contextlib.suppress(Exception):
            xlib.XCloseDisplay(dpy)
    return size if size[0] > 0 and size[1] > 0 else None
