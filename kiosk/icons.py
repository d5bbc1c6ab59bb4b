"""Icons beside the words, for people who read little: one glyph of the Material Icons font
(Debian ``fonts-material-design-icons-iconfont``, Apache 2.0) on every action and state.

Kivy's text renderer does not apply the font's ligatures, so icons are drawn by code point
(the names and code points are those of the package's ``scss/_variables.scss``). Screens get
their icons from here without naming them: a button's icon comes from its ``kid``
(``ICON_FOR_KID``), a screen title's from the screen's name (``ICON_FOR_SCREEN``), a label's
from its msgid (``ICON_FOR_TEXT``). Directional icons are mirrored for right-to-left
languages (``MIRRORED``). Without the font the kiosk shows the words alone (a warning in the
log, once).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

ICON_FONT_FILES = (
    Path("/usr/share/fonts/truetype/material-design-icons-iconfont/MaterialIcons-Regular.ttf"),
    Path("/usr/share/fonts/opentype/material-design-icons-iconfont/MaterialIcons-Regular.otf"),
)
ICON_SCALE = 1.35  # an icon is drawn this much larger than the words beside it

# Material Icons name -> code point
CODEPOINTS = {
    "confirmation_number": 0xE638, "local_library": 0xE54B, "support_agent": 0xF0E2,
    "logout": 0xE9BA, "timer": 0xE425, "pause_circle": 0xE1A2, "play_arrow": 0xE037,
    "lock": 0xE897, "print": 0xE8AD, "translate": 0xE8E2, "volume_up": 0xE050,
    "arrow_back": 0xE5C4, "arrow_forward": 0xE5C8, "backspace": 0xE14A, "clear": 0xE14C,
    "check": 0xE5CA, "check_circle": 0xE86C, "payments": 0xEF63, "cloud_off": 0xE2C1,
    "refresh": 0xE5D5, "format_size": 0xE245, "receipt_long": 0xEF6E, "search": 0xE8B6,
    "warning": 0xE002, "hourglass_bottom": 0xEA5C, "front_hand": 0xE769,
    "exit_to_app": 0xE879, "apps": 0xE5C3, "open_in_new": 0xE89E, "description": 0xE873,
    "menu_book": 0xEA19, "help": 0xE887, "home": 0xE88A, "chat": 0xE0B7,
    "folder": 0xE2C7, "close": 0xE5CD, "pin": 0xF045, "space_bar": 0xE256, "usb": 0xE1E0,
    "navigate_before": 0xE408, "navigate_next": 0xE409, "picture_as_pdf": 0xE415,
    "zoom_in": 0xE8FF, "zoom_out": 0xE900, "account_balance": 0xE84F, "work": 0xE8F9,
    "school": 0xE80C, "store": 0xE8D1, "build": 0xE869, "more_horiz": 0xE5D3,
    "child_care": 0xEB41, "person": 0xE7FD, "groups": 0xF233, "elderly": 0xF21A,
    "face": 0xE87C, "female": 0xE590, "male": 0xE58E, "help_outline": 0xE8FD,
    "skip_next": 0xE044, "bar_chart": 0xE26B,
}

# an icon that points one way, and its mirror image for right-to-left reading
MIRRORED = {"arrow_back": "arrow_forward", "arrow_forward": "arrow_back",
            "skip_next": "skip_previous",
            "navigate_before": "navigate_next", "navigate_next": "navigate_before",
            "logout": "login", "exit_to_app": "exit_to_app", "backspace": "backspace"}
CODEPOINTS["login"] = 0xEA77
CODEPOINTS["skip_previous"] = 0xE045

# actions, by the button's kid (tests and traces name buttons by it)
ICON_FOR_KID = {
    "start_voucher": "confirmation_number", "portal": "local_library",
    "ask_operator": "support_agent", "end": "logout", "end_yes": "logout",
    "end_no": "play_arrow", "back": "arrow_back", "done": "check_circle",
    "redeem": "check", "key_del": "backspace", "key_clear": "clear", "retry": "refresh",
    "large_text": "format_size", "lang_menu": "translate", "listen": "volume_up",
    "message_ok": "check", "warning_ok": "check", "notice_ok": "check",
    "idle_here": "front_hand", "pin_ok": "exit_to_app", "portal_search": "search",
    "resume": "play_arrow", "pause": "pause_circle", "print": "print", "files": "folder",
    "your_files": "folder", "close": "close", "search_space": "space_bar",
    "search_del": "backspace", "bar_back": "arrow_back", "bar_end": "logout",
    "usb_copy": "usb", "pdf_prev": "navigate_before", "pdf_next": "navigate_next",
    "pdf_zoom_in": "zoom_in", "pdf_zoom_out": "zoom_out",
    # the "help us count" screen (kiosk/screens/profile.py)
    "prof_purpose_egov": "account_balance", "prof_purpose_job": "work",
    "prof_purpose_school": "school", "prof_purpose_business": "store",
    "prof_purpose_training": "build", "prof_purpose_other": "more_horiz",
    "prof_age_band_<18": "child_care", "prof_age_band_18-24": "person",
    "prof_age_band_25-34": "person", "prof_age_band_35-54": "groups",
    "prof_age_band_55+": "elderly", "prof_gender_f": "female", "prof_gender_m": "male",
    "prof_gender_x": "help_outline", "profile_skip": "skip_next",
    "profile_done": "check_circle",
}
ICON_FOR_KID_PREFIX = {"app_": "apps", "pkg_": "menu_book", "file_": "description",
                       "hit_": "description"}

# states: the title of each screen
ICON_FOR_SCREEN = {
    "welcome": "home", "voucher": "confirmation_number", "operator": "support_agent",
    "session": "timer", "receipt": "receipt_long", "locked": "lock", "offline": "cloud_off",
    "pin": "pin", "portal": "local_library", "portal_item": "description",
    "paused": "pause_circle", "printer": "print", "portal_pdf": "picture_as_pdf",
    "profile": "bar_chart",
}

# states shown by a label (its msgid)
ICON_FOR_TEXT = {
    "Time left": "timer", "Time used": "timer", "Fee so far": "payments",
    "Choose your language": "translate", "This station is locked.": "lock",
    "Type the code printed on your voucher": "confirmation_number",
    "Duration": "timer", "Fee": "payments", "Voucher time left": "confirmation_number",
    "Time is running out": "hourglass_bottom", "Message from the operator": "chat",
    "End session": "logout", "Sorry": "warning", "Are you still there?": "front_hand",
    "Session ended": "check_circle", "Operator PIN": "pin",
    "This station is out of service for a moment.": "cloud_off",
    "Your session is paused": "pause_circle", "Session paused": "pause_circle",
}


@cache
def icon_font() -> str | None:
    """The icon font file, or None when it is not installed (words only)."""
    for p in ICON_FONT_FILES:
        if p.is_file():
            return str(p)
    log.warning("icon font not found (%s): the kiosk shows words without icons; "
                "install Debian's fonts-material-design-icons-iconfont",
                ", ".join(map(str, ICON_FONT_FILES)))
    return None


def glyph(name: str, rtl: bool = False) -> str:
    """The character that draws icon ``name`` (mirrored for right-to-left), or ""."""
    if not name:
        return ""
    if rtl:
        name = MIRRORED.get(name, name)
    cp = CODEPOINTS.get(name)
    return chr(cp) if cp is not None else ""


def for_kid(kid: str) -> str:
    """The icon name of the button ``kid``, or ""."""
    if kid in ICON_FOR_KID:
        return ICON_FOR_KID[kid]
    for prefix, name in ICON_FOR_KID_PREFIX.items():
        if kid.startswith(prefix):
            return name
    return ""


def icon_markup(name: str, rtl: bool, size: float) -> str:
    """Kivy markup that draws icon ``name`` at ``size`` px, or "" without the font."""
    font = icon_font()
    ch = glyph(name, rtl)
    if font is None or not ch:
        return ""
    return f"[font={font}][size={round(size)}]{ch}[/size][/font]"
