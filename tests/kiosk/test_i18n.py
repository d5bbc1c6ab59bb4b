"""kiosk/i18n.py: catalogues, money, Arabic shaping after logical wrapping, fonts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from kiosk.i18n import (
    LANGS,
    Localizer,
    catalogue,
    fold,
    layout_markup,
    runs,
    visual_line,
    wrap_logical,
)

KIOSK = Path(__file__).resolve().parents[2] / "kiosk"


def width(_script: str, text: str, _size: float) -> float:
    return 10.0 * len(text)


def test_catalogues_have_the_same_messages_all_translated() -> None:
    en = catalogue("en")
    assert len(en) > 60
    for lang in ("ar", "fr", "zgh"):
        cat = catalogue(lang)
        assert set(cat) == set(en), lang
        for msgid, text in cat.items():
            # the fields of a message must survive translation
            assert sorted(_fields(msgid)) == sorted(_fields(text)), (lang, msgid)


def _fields(s: str) -> list[str]:
    import string
    return [f for _, f, _, _ in string.Formatter().parse(s) if f]


def test_every_literal_message_in_the_code_is_in_the_catalogue() -> None:
    """String literals given to t(), lab(), btn(), modal_body(), page() and _notice()."""
    en = catalogue("en")
    calls = {"t": 0, "lab": 1, "btn": 1, "page": 1, "_notice": 0, "header": 1}
    missing = []
    for path in (*sorted((KIOSK / "screens").glob("*.py")), KIOSK / "app.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            raw = any(k.arg in ("raw", "raw_text", "raw_title") for k in node.keywords)
            args = list(node.args)
            if name == "modal_body":
                idx = [1] if raw else [1, 2]
            elif name in calls and not raw:
                idx = [calls[name]]
            else:
                continue
            for i in idx:
                if i < len(args) and isinstance(args[i], ast.Constant) \
                        and isinstance(args[i].value, str) and args[i].value not in en:
                    missing.append(args[i].value)
    assert missing == []


def test_money_is_exact_and_local() -> None:
    assert Localizer("fr").money(123456) == "1\u202f234,56\xa0MAD"
    assert Localizer("zgh").money(250) == "2,50\xa0MAD"
    assert "12,50" in Localizer("ar").money(1250) and "د.م." in Localizer("ar").money(1250)
    assert Localizer("en").money(5) == "MAD0.05"
    with pytest.raises(TypeError):
        Localizer("fr").money(12.5)  # type: ignore[arg-type]


def test_translation_and_fields() -> None:
    assert Localizer("fr").t("Trying again in {seconds} s", seconds=4) == "Nouvel essai dans 4 s"
    assert Localizer("zgh").t("Welcome") == "ⴰⵏⵙⵓⴼ"
    assert Localizer("fr").duration(3725) == "1 h 02 min"
    assert Localizer("ar").clock(65) == "01:05"
    with pytest.raises(ValueError, match="unknown language"):
        Localizer("de")


def test_arabic_is_shaped_and_reordered_digits_kept() -> None:
    line = visual_line("تبقى 15 دقيقة", rtl=True)
    assert "15" in line                       # digits are not reversed
    assert "\u062a" not in line               # letters replaced by their joined forms
    assert line.index("15") > 0 and line.rstrip().endswith(line.rstrip()[-1])
    # logical "X 15 Y" drawn RTL: Y comes first (leftmost), X last
    first_word = visual_line("تبقى", rtl=True)
    assert line.endswith(first_word)


def test_latin_only_line_in_arabic_mode_keeps_its_order() -> None:
    assert visual_line("<ABCDE-12345>", rtl=True) == "<ABCDE-12345>"


def test_wrapping_happens_in_logical_order_before_reordering() -> None:
    text = "واحد اثنان ثلاثة أربعة خمسة"
    lines = wrap_logical(text, 120, 20, width)
    assert len(lines) > 1
    assert " ".join(lines) == text  # the first line holds the first words
    laid = layout_markup(text, True, 120, 20, width)
    assert laid.lines == len(lines)
    drawn = laid.markup.split("\n")
    assert "ﺪﺣﺍﻭ" in drawn[0]  # the first word (shaped, reversed) is on the first line


def test_each_script_gets_a_font_that_has_it() -> None:
    assert [s for s, _ in runs("ⴰⵣⵓⵍ 12 MAD مرحبا")] == ["tifinagh", "latin", "arabic"]
    m = layout_markup("ⴰⵣⵓⵍ 12", False, 500, 20, width).markup
    assert "NotoSansTifinagh" in m and "[font=" in m


def test_search_fold() -> None:
    assert fold("Étapes") == fold("etapes")
    assert fold("أحمد") == fold("احمد")


@pytest.mark.parametrize("lang", LANGS)
def test_language_names_render(lang: str) -> None:
    assert Localizer(lang).rtl == (lang == "ar")
