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


@pytest.mark.parametrize(("text", "words"), [
    (CATALOGUE_TOML * 2, "catalogue[1].id: duplicate item id 'print-bw'"),
    (CATALOGUE_TOML.replace("price = 100", "price = -100"), "catalogue[0].price"),
    (CATALOGUE_TOML.replace('unit = "page"', 'unit = "kg"'), "catalogue[0].unit"),
])
def test_the_hub_checks_items_as_the_agent_does(text: str, words: str) -> None:
    """The same check as the agent's config file (wire/catalogue.py), before sending."""
    with pytest.raises(commands.CommandError) as err:
        commands.build_args("set_catalogue", {"catalogue": text})
    assert words in str(err.value)
