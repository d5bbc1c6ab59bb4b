"""kiosk/icons.py: the code points are the icon font's own, every action has one, the
icon sits before the words in reading order and directional icons are mirrored for Arabic.
(That the font draws them as glyphs, not boxes, is checked in the real window: driver.py
"screens".)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kiosk import icons
from kiosk.widgets import with_icon

SCSS = Path("/usr/share/fonts-material-design-icons-iconfont/scss/_variables.scss")


@pytest.mark.skipif(not SCSS.is_file(), reason="fonts-material-design-icons-iconfont absent")
def test_code_points_are_the_fonts_own() -> None:
    table = {m.group(1): int(m.group(2), 16)
             for m in re.finditer(r'"([a-z0-9_]+)": ([0-9a-f]+),', SCSS.read_text())}
    wrong = {n: hex(cp) for n, cp in icons.CODEPOINTS.items() if table.get(n) != cp}
    assert wrong == {}


def test_every_named_icon_has_a_code_point() -> None:
    used = {*icons.ICON_FOR_KID.values(), *icons.ICON_FOR_KID_PREFIX.values(),
            *icons.ICON_FOR_SCREEN.values(), *icons.ICON_FOR_TEXT.values(),
            *icons.MIRRORED.values()}
    assert used - set(icons.CODEPOINTS) == set()


def test_actions_and_states_named_by_the_issue_have_icons() -> None:
    for kid in ("start_voucher", "portal", "ask_operator", "end", "lang_menu", "listen",
                "app_browser", "pkg_guide"):
        assert icons.for_kid(kid), kid
    for screen in ("session", "paused", "locked", "printer"):
        assert screen in icons.ICON_FOR_SCREEN
    assert icons.ICON_FOR_TEXT["Time left"] == "timer"


def test_mirrored_for_arabic() -> None:
    assert icons.glyph("arrow_back", rtl=True) == chr(icons.CODEPOINTS["arrow_forward"])
    assert icons.glyph("arrow_back") == chr(icons.CODEPOINTS["arrow_back"])
    assert icons.glyph("logout", rtl=True) == chr(icons.CODEPOINTS["login"])
    assert icons.glyph("timer", rtl=True) == icons.glyph("timer")  # not directional
    assert icons.glyph("no_such_icon") == ""


def test_icon_before_the_words_in_reading_order() -> None:
    assert with_icon("Start\nnow", "<I>", rtl=False) == "<I>  Start\nnow"
    assert with_icon("ابدأ\nالآن", "<I>", rtl=True) == "ابدأ  <I>\nالآن"


def test_without_the_font_words_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(icons, "ICON_FONT_FILES", (Path("/nonexistent/icons.ttf"),))
    icons.icon_font.cache_clear()
    try:
        assert icons.icon_markup("timer", False, 30) == ""
    finally:
        icons.icon_font.cache_clear()
