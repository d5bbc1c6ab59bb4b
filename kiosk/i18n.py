"""All displayed text: gettext catalogues (read with Babel), locale formatting, and the
shaping that Kivy lacks (Arabic joining and bidi reordering, per line after wrapping in
logical order; one font per script run).

``Localizer.t(msgid, **kw)`` is the one function every screen uses for its words;
``layout_markup(text, ...)`` turns that logical text into the Kivy markup a label draws.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path

import arabic_reshaper
from babel.dates import format_time
from babel.numbers import format_currency, format_decimal
from bidi import get_display

from common.pocatalogue import read_catalogue

LANGS = ("ar", "fr", "zgh", "en")
RTL_LANGS = frozenset({"ar"})
DEFAULT_LANG = "fr"
LOCALE_DIR = Path(__file__).with_name("locale")
DOMAIN = "kiosk"

# Babel locale for numbers and times
BABEL_LOCALE = {"ar": "ar_MA", "fr": "fr_MA", "zgh": "zgh_MA", "en": "en_GB"}
# money: Babel's zgh has no currency pattern of its own (it glues "12,50MAD"): use fr_MA's
MONEY_LOCALE = {**BABEL_LOCALE, "zgh": "fr_MA"}

# The language names on the welcome screen, each in its own language.
LANG_NAMES = {"ar": "العربية", "fr": "Français", "zgh": "ⵜⴰⵎⴰⵣⵉⵖⵜ", "en": "English"}

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/truetype/dejavu"),
             Path("/usr/share/fonts/noto"), Path("/usr/share/fonts/dejavu"))
# script -> font files in order of preference; "latin" also draws digits and punctuation
FONT_FILES = {
    "arabic": ("NotoNaskhArabic-Regular.ttf", "NotoSansArabic-Regular.ttf", "DejaVuSans.ttf"),
    "tifinagh": ("NotoSansTifinagh-Regular.ttf", "DejaVuSans.ttf"),
    "latin": ("NotoSans-Regular.ttf", "DejaVuSans.ttf"),
}

# bidi controls that Babel puts into Arabic numbers: after get_display they only draw boxes
_BIDI_CONTROLS = dict.fromkeys(map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                       "\u2066\u2067\u2068\u2069\u061c"))


class FontMissing(RuntimeError):
    """A font the kiosk needs is not installed."""


@cache
def font_path(script: str) -> str:
    """The installed font file for ``script`` (arabic, tifinagh, latin)."""
    for name in FONT_FILES[script]:
        for d in FONT_DIRS:
            if (d / name).is_file():
                return str(d / name)
    raise FontMissing(
        f"no font for {script} text: install one of {', '.join(FONT_FILES[script])} "
        "(Debian: apt-get install fonts-noto-core fonts-dejavu-core)")


def check_fonts() -> None:
    for script in FONT_FILES:
        font_path(script)


# ---------------------------------------------------------------- catalogues


@cache
def catalogue(lang: str) -> dict[str, str]:
    """msgid -> translated text for ``lang`` (empty translations are left out)."""
    return read_catalogue(LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po")


class Localizer:
    """Words, numbers, money and times for one language."""

    missing: set[tuple[str, str]] = set()  # (lang, msgid) asked for but not translated

    def __init__(self, lang: str) -> None:
        if lang not in LANGS:
            raise ValueError(f"unknown language {lang!r} (known: {', '.join(LANGS)})")
        self.lang = lang
        self.rtl = lang in RTL_LANGS
        self.locale = BABEL_LOCALE[lang]
        self._cat = catalogue(lang)

    def t(self, msgid: str, **kw: object) -> str:
        """The translation of ``msgid`` (the English text), with ``{name}`` fields filled."""
        text = self._cat.get(msgid)
        if text is None:
            if self.lang != "en":
                Localizer.missing.add((self.lang, msgid))
            text = msgid
        return text.format(**kw) if kw else text

    def money(self, centimes: int, currency: str = "MAD") -> str:
        if isinstance(centimes, bool) or not isinstance(centimes, int):
            raise TypeError("money is an integer number of centimes")
        return format_currency(Decimal(centimes) / 100, currency, locale=MONEY_LOCALE[self.lang])

    def number(self, n: int) -> str:
        return format_decimal(n, locale=self.locale)

    def clock(self, seconds: int) -> str:
        """A countdown: ``H:MM:SS`` or ``MM:SS`` (digits of the locale are Latin in all four)."""
        seconds = max(0, int(seconds))
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"

    def duration(self, seconds: int) -> str:
        """``1 h 05 min`` / ``12 min 30 s`` in words of the language."""
        seconds = max(0, int(seconds))
        h, rest = divmod(seconds, 3600)
        m, s = divmod(rest, 60)
        if h:
            return self.t("{h} h {m:02d} min", h=h, m=m)
        if m:
            return self.t("{m} min {s:02d} s", m=m, s=s)
        return self.t("{s} s", s=s)

    def time_of_day(self, when: object) -> str:
        return format_time(when, format="short", locale=self.locale)  # type: ignore[arg-type]


# ---------------------------------------------------------------- shaping and layout


def script_of(ch: str) -> str | None:
    """The font script a character needs, or None for neutral characters (space, marks)."""
    o = ord(ch)
    if 0x0600 <= o <= 0x06FF or 0x0750 <= o <= 0x077F or 0x08A0 <= o <= 0x08FF \
            or 0xFB50 <= o <= 0xFDFF or 0xFE70 <= o <= 0xFEFF:
        return "arabic"
    if 0x2D30 <= o <= 0x2D7F:
        return "tifinagh"
    if ch.isspace():
        return None
    return "latin"


def runs(text: str) -> list[tuple[str, str]]:
    """Split text into (script, chunk) runs; spaces join the run before them."""
    out: list[tuple[str, str]] = []
    for ch in text:
        sc = script_of(ch)
        if out and (sc is None or sc == out[-1][0]):
            out[-1] = (out[-1][0], out[-1][1] + ch)
        else:
            out.append((sc or "latin", ch))
    return out


def visual_line(line: str, rtl: bool) -> str:
    """One logical line as drawn: Arabic joined, bidi reordered, bidi controls dropped."""
    has_arabic = any(script_of(c) == "arabic" for c in line)
    if has_arabic:
        # an RTL paragraph only when there is RTL text: a Latin-only line (a voucher code,
        # an error detail) keeps its own direction, so its brackets are not mirrored
        line = get_display(arabic_reshaper.reshape(line), base_dir="R" if rtl else "L")
    return line.translate(_BIDI_CONTROLS)


Measure = Callable[[str, str, float], float]  # (script, text, font_size) -> width in px


def line_width(line: str, size: float, measure: Measure) -> float:
    shaped = arabic_reshaper.reshape(line) if any(script_of(c) == "arabic" for c in line) \
        else line
    return sum(measure(sc, chunk, size) for sc, chunk in runs(shaped))


def wrap_logical(text: str, width: float, size: float, measure: Measure) -> list[str]:
    """Greedy word wrap in logical order (before any reordering: FIELD-NOTES)."""
    lines: list[str] = []
    for para in text.split("\n"):
        words = para.split(" ")
        cur = ""
        for w in words:
            cand = w if not cur else f"{cur} {w}"
            if cur and width > 0 and line_width(cand, size, measure) > width:
                lines.append(cur)
                cur = w
            else:
                cur = cand
        lines.append(cur)
    return lines


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("[", "&bl;").replace("]", "&br;")


def line_markup(vis: str) -> str:
    """Kivy markup that draws each script run of a visual line in a font that has it."""
    return "".join(f"[font={font_path(sc)}]{escape(chunk)}[/font]" for sc, chunk in runs(vis))


@dataclass(frozen=True)
class Laid:
    markup: str
    lines: int


def layout_markup(text: str, rtl: bool, width: float, size: float,
                  measure: Measure) -> Laid:
    """Wrap ``text`` to ``width`` in logical order, then shape and reorder each line."""
    lines = wrap_logical(text, width, size, measure)
    return Laid("\n".join(line_markup(visual_line(ln, rtl)) for ln in lines), len(lines))


# ---------------------------------------------------------------- search


def fold(text: str) -> str:
    """Search key: case-folded, accents and Arabic diacritics removed, alef forms merged."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    out = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub("[أإآ]", "ا", out)
