"""The agent's optional ``[content]`` table: defaults, and errors that name the key."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from agent_support import config_dict

from agent.config import ConfigError, parse_agent_config


def test_defaults_and_full_table(tmp_path: Path) -> None:
    cfg = parse_agent_config(config_dict(tmp_path))
    assert cfg.content.hub_url is None and cfg.content.quota_mb == 2048
    raw = config_dict(tmp_path)
    raw["content"] = {"hub_url": "http://hub.example:8080/", "quota_mb": 500,
                      "reserve_mb": 100, "window": "22:00-06:00", "max_kbps": 512,
                      "poll_seconds": 600, "pinned": ["guides-admin-ar"]}
    c = parse_agent_config(raw).content
    assert c.hub_url == "http://hub.example:8080"
    assert c.window == (time(22, 0), time(6, 0))
    assert (c.quota_mb, c.reserve_mb, c.max_kbps, c.poll_seconds) == (500, 100, 512, 600)
    assert c.pinned == ("guides-admin-ar",)


@pytest.mark.parametrize(("table", "key"), [
    ({"hub": "x"}, "content.hub"),
    ({"hub_url": "ftp://x"}, "content.hub_url"),
    ({"hub_url": 5}, "content.hub_url"),
    ({"window": "22:00"}, "content.window"),
    ({"window": "25:00-06:00"}, "content.window"),
    ({"quota_mb": 0}, "content.quota_mb"),
    ({"reserve_mb": -1}, "content.reserve_mb"),
    ({"max_kbps": "fast"}, "content.max_kbps"),
    ({"poll_seconds": 0}, "content.poll_seconds"),
    ({"pinned": "guides"}, "content.pinned"),
    ({"pinned": ["Bad Id"]}, "content.pinned"),
])
def test_errors_name_the_key(tmp_path: Path, table: dict, key: str) -> None:
    raw = config_dict(tmp_path)
    raw["content"] = table
    with pytest.raises(ConfigError) as exc:
        parse_agent_config(raw)
    assert exc.value.key == key
