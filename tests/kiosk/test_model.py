"""kiosk/model.py: screen decisions, local countdown, warnings, idle timeout, PIN lockout,
code entry."""

from __future__ import annotations

from kiosk.model import (
    IDLE_NONE,
    PIN_BLOCK_SECONDS,
    PIN_MAX_FAILURES,
    Countdown,
    FailureLockout,
    IdleVerdict,
    Warnings,
    add_symbol,
    code_complete,
    decide,
    del_symbol,
    idle_verdict,
    moved_to,
    out_of_service,
    pin_return_screen,
    poll_delay,
    receipt_from_session,
    redeem_block_seconds,
    redeem_error_message,
    type_pin,
    type_search,
    warning_msgid,
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


def _idle(now: float, *, in_session: bool = True, screen: str = "session",
          ending: bool = False, idle_seconds: float = 300, x_idle: float | None = None
          ) -> IdleVerdict:
    """Last touch at 100 s, 300 s idle timeout, warned during the last 30 s."""
    return idle_verdict(now=now, last_activity=100.0, idle_seconds=idle_seconds,
                        warning_seconds=30, in_session=in_session, screen=screen,
                        ending=ending, x_idle=x_idle)


def test_idle_warns_in_the_last_seconds_then_ends() -> None:
    assert _idle(100.0 + 269) == IDLE_NONE
    assert _idle(100.0 + 270) == IdleVerdict(warn=True, seconds_left=30)
    assert _idle(100.0 + 280.5) == IdleVerdict(warn=True, seconds_left=20)  # rounded up
    assert _idle(100.0 + 300) == IdleVerdict(end=True)


def test_idle_is_off_outside_a_session_while_ending_or_at_zero() -> None:
    late = 100.0 + 1000
    assert _idle(late, in_session=False) == IDLE_NONE
    assert _idle(late, screen="receipt") == IDLE_NONE
    assert _idle(late, screen="portal").end                 # the library is a session screen
    assert _idle(late, ending=True) == IDLE_NONE
    assert _idle(late, idle_seconds=0) == IDLE_NONE


def test_idle_counts_input_on_the_whole_display() -> None:
    # a citizen typing in a launched browser: the kiosk window saw nothing for 1000 s
    assert _idle(100.0 + 1000, x_idle=5.0) == IDLE_NONE
    assert _idle(100.0 + 1000, x_idle=290.0) == IdleVerdict(warn=True, seconds_left=10)
    assert _idle(100.0 + 10, x_idle=900.0) == IDLE_NONE     # the kiosk's own touch counts


def test_pin_lockout_blocks_after_five_failures_for_a_minute() -> None:
    lock = FailureLockout()
    for _ in range(PIN_MAX_FAILURES - 1):
        lock.failed(now=10.0)
        assert not lock.blocked(10.0)
    lock.failed(now=10.0)
    assert lock.blocked(10.0) and lock.blocked(10.0 + PIN_BLOCK_SECONDS - 0.1)
    assert not lock.blocked(10.0 + PIN_BLOCK_SECONDS)
    lock.failed(now=100.0)                                   # the count started again
    assert not lock.blocked(100.0)


def test_small_entry_and_poll_rules() -> None:
    assert type_pin("12", "3") == "123" and type_pin("123", "<") == "12"
    assert type_pin("1" * 12, "2") == "1" * 12
    assert type_search("a" * 40, "b") == "a" * 40
    assert redeem_block_seconds(None) == 60 and redeem_block_seconds(7) == 7
    assert warning_msgid(300) == "5 minutes left. Save your work."
    assert warning_msgid(60) == "1 minute left. Save your work now."
    assert poll_delay(True, 2.0, 5) == 2.0 and poll_delay(False, 2.0, 5) == 5
    assert out_of_service(1, polled_once=False) and not out_of_service(1, polled_once=True)
    assert out_of_service(2, polled_once=True)
    assert pin_return_screen("session", in_session=False) == "welcome"
    assert pin_return_screen("session", in_session=True) == "session"
    assert pin_return_screen("voucher", in_session=False) == "voucher"
    assert receipt_from_session({"billed_seconds": 61, "fee_so_far": 200}) == {
        "billed_seconds": 61, "fee": 200, "currency": "MAD", "voucher_minutes_left": None}


def test_a_paused_session_has_its_own_screen_without_idle_end() -> None:
    paused = {"session": {"id": "a", "state": "paused"}}
    running = {"session": {"id": "a", "state": "running"}}
    assert decide("session", paused, False) == "paused"
    assert decide("bar", paused, False) == "paused"
    assert decide("paused", running, False) == "session"
    assert decide("pin", paused, False) == "pin"  # the operator may still leave the kiosk
    assert decide("paused", {"session": None}, True) == "receipt"
    assert decide("paused", {"session": None, "locked": True}, True) == "locked"
    assert idle_verdict(now=100.0, last_activity=0.0, idle_seconds=10, warning_seconds=5,
                        in_session=True, screen="paused", ending=False) == IDLE_NONE


def test_a_moved_session_is_told_apart_from_an_ended_one() -> None:
    last = {"id": "a"}
    assert moved_to({"session": None, "moved": {"session": "a", "to": "s2"}}, last) == "s2"
    assert moved_to({"session": None, "moved": {"session": "b", "to": "s2"}}, last) is None
    assert moved_to({"session": None}, last) is None


def test_a_paused_countdown_stands_still() -> None:
    c = Countdown()
    c.set(600, 10.0, running=False)
    assert c.value(10.0) == 600 and c.value(4000.0) == 600
    c.set(600, 4000.0)
    assert c.value(4010.0) == 590
