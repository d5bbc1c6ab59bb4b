"""The hub's set_catalogue command (issue 17): the dashboard form's TOML becomes the
command's ``catalogue`` list; what is not TOML or has no [[catalogue]] tables is a clear
error before anything is sent (the agent then checks every item as its config file)."""

from __future__ import annotations

import pytest

from hub import commands

CATALOGUE_TOML = """
[[catalogue]]
id = "print-bw"
name = { fr = "Impression N&B", ar = "طباعة أبيض وأسود" }
price = 100
unit = "page"
"""


def test_set_catalogue_takes_the_catalogue_tables() -> None:
    assert "set_catalogue" in commands.NAMES
    args, station = commands.build_args("set_catalogue", {"catalogue": CATALOGUE_TOML})
    assert station is None
    assert args == {"catalogue": [{"id": "print-bw", "price": 100, "unit": "page",
                                   "name": {"fr": "Impression N&B",
                                            "ar": "طباعة أبيض وأسود"}}]}


@pytest.mark.parametrize(("text", "words"), [
    ("", "needs"), ("[[catalogue]\\nid=", "not valid TOML"), ("id = 'x'", "[[catalogue]]")])
def test_a_bad_catalogue_is_refused_before_sending(text: str, words: str) -> None:
    with pytest.raises(commands.CommandError, match=words.replace("[", r"\[")):
        commands.build_args("set_catalogue", {"catalogue": text})
    with pytest.raises(commands.CommandError):
        commands.build_args("set_catalogue", {"catalogue": "x", "station": "s1"})
