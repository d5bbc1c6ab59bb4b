"""Kivy settings for a public kiosk; must run before anything imports ``kivy.core.window``."""

from __future__ import annotations

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
