"""kiosk/model.py: screen decisions, local countdown, warnings, code entry."""

from __future__ import annotations

from kiosk.model import (
    Countdown,
    Warnings,
    add_symbol,
    code_complete,
    decide,
    del_symbol,
    redeem_error_message,
)

SESSION = {"session": {"id": "a", "remaining_seconds": 100}, "locked": False}
NONE = {"session": None, "locked": False}


def test_decide() -> None:
    assert decide("welcome", None, False) == "offline"
    assert decide("session", None, True) == "session"      # time goes on at the agent
    assert decide("session", {"locked": True, "session": None}, True) == "locked"
    assert decide("welcome", SESSION, False) == "session"
    assert decide("portal", SESSION, False) == "portal"
    assert decide("session", NONE, True) == "receipt"
    assert decide("locked", NONE, False) == "welcome"
    assert decide("offline", NONE, False) == "welcome"
    assert decide("voucher", NONE, False) == "voucher"
    assert decide("receipt", NONE, False) == "receipt"


def test_countdown_counts_locally_and_is_corrected() -> None:
    c = Countdown()
    c.set(300, now=10.0)
    assert c.value(12.4) == 298
    c.set(250, now=13.0)       # the agent says otherwise: it wins
    assert c.value(13.0) == 250
    assert c.value(1000) == 0
    c.set(None, 0)
    assert c.value(5) is None


def test_warnings_fire_once_each_and_rearm_after_an_extension() -> None:
    w = Warnings()
    assert w.update("s", 600) == []
    assert w.update("s", 301) == []
    assert w.update("s", 299) == [300]
    assert w.update("s", 250) == []
    assert w.update("s", 59) == [60]
    assert w.update("s", 30) == []
    assert w.update("s", 900) == []          # extended
    assert w.update("s", 300) == [300]
    # a restarted kiosk that finds 4 minutes left does not warn about 5
    w2 = Warnings()
    assert w2.update("t", 240) == []
    assert w2.update("t", 60) == [60]
    # jumping past both thresholds at once shows the lower one only
    w3 = Warnings()
    w3.update("u", 900)
    assert w3.update("u", 30) == [60]
    assert w3.update("u", 20) == []


def test_code_entry() -> None:
    code = ""
    for ch in "ABCDE12345X":
        code = add_symbol(code, ch)
    assert code == "ABCDE-12345" and code_complete(code)
    assert add_symbol("", "U") == ""        # not a Crockford symbol
    assert del_symbol("ABCDE-1") == "ABCDE"


def test_redeem_errors() -> None:
    assert redeem_error_message(429, "too_many_attempts", 42) == (
        "Too many wrong codes. Try again in {seconds} s.", {"seconds": 42})
    assert redeem_error_message(409, "voucher_expired", None)[0] == "This voucher has expired."
    assert "operator" in redeem_error_message(400, "weird", None)[0]
