"""common/logonce.py: a reason is logged the first time only, and distinct keys are bounded."""

from __future__ import annotations

import logging

import pytest

from common.logonce import LogOnce

log = logging.getLogger("tests.logonce")


def test_each_key_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(log)
    with caplog.at_level(logging.DEBUG, logger=log.name):
        assert once("a", "first %s", 1)
        assert not once("a", "again %s", 2)
        assert once(("b", "x"), "other", level=logging.ERROR)
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "first 1"), (logging.ERROR, "other")]


def test_past_max_keys_one_line_says_so(caplog: pytest.LogCaptureFixture) -> None:
    once = LogOnce(log, max_keys=2, full_message="too many")
    with caplog.at_level(logging.WARNING, logger=log.name):
        for key in "abcde":
            once(key, "key %s", key)
    assert [r.getMessage() for r in caplog.records] == ["key a", "key b", "too many"]
