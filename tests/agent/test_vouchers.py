"""Voucher codes and redemption rules (agent/vouchers.py)."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.meter.vouchers import (
    ALPHABET,
    InvalidCode,
    Voucher,
    VoucherEntry,
    VoucherRejected,
    VoucherStateError,
    check_redeemable,
    code_to_int,
    generate_code,
    normalize_code,
)

CODE_RE = re.compile(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}")
CASABLANCA = ZoneInfo("Africa/Casablanca")
SOLD = datetime(2025, 5, 1, 10, 0, tzinfo=CASABLANCA)  # +01:00 (not Ramadan)
EXPIRES = SOLD + timedelta(days=30)


class FixedRandom(secrets.SystemRandom):
    """A SystemRandom that returns a chosen number and records how many bits were asked."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value
        self.asked: list[int] = []

    def getrandbits(self, k: int) -> int:
        self.asked.append(k)
        return self.value


def make_voucher(**changes: object) -> Voucher:
    base = Voucher(
        code="ABCDE-12345",
        cac_id="ma-oriental-oujda-001",
        seconds_total=3600,
        seconds_left=3600,
        price=800,
        category=None,
        sold_at=SOLD,
        expires_at=EXPIRES,
        sold_by="amina",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- codes -------------------------------------------------------------------------------


def test_alphabet_is_crockford_base32() -> None:
    assert ALPHABET == "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    assert len(set(ALPHABET)) == 32
    assert not set("ILOU") & set(ALPHABET)


def test_generated_code_format() -> None:
    code = generate_code()
    assert CODE_RE.fullmatch(code), code
    assert len(code) == 11
    assert code[5] == "-"


def test_thousand_codes_unique_and_canonical() -> None:
    codes = [generate_code() for _ in range(1000)]
    assert len(set(codes)) == 1000
    for code in codes:
        assert CODE_RE.fullmatch(code), code
        assert normalize_code(code) == code


def test_generate_asks_rng_for_exactly_50_bits() -> None:
    rng = FixedRandom(0)
    assert generate_code(rng) == "00000-00000"
    assert rng.asked == [50]


def test_generate_encodes_all_50_bits_big_endian() -> None:
    assert generate_code(FixedRandom(2**50 - 1)) == "ZZZZZ-ZZZZZ"
    assert generate_code(FixedRandom(1)) == "00000-00001"
    assert generate_code(FixedRandom(1 << 45)) == "10000-00000"
    value = 0x2_3456_789A_BCDE
    assert code_to_int(generate_code(FixedRandom(value))) == value


def test_generated_codes_spread_over_50_bits() -> None:
    codes = [generate_code() for _ in range(2000)]
    values = [code_to_int(c) for c in codes]
    assert all(0 <= v < 2**50 for v in values)
    # The top bits are used too: with 50 random bits about half the values are >= 2**49.
    assert sum(v >= 2**49 for v in values) > 800
    for position in range(10):
        seen = {c.replace("-", "")[position] for c in codes}
        # 2000 uniform draws over 32 symbols leave practically none unseen.
        assert len(seen) >= 30, (position, sorted(seen))


def test_default_generator_uses_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def fake_randbits(k: int) -> int:
        asked.append(k)
        return 31

    monkeypatch.setattr("agent.meter.vouchers.secrets.randbits", fake_randbits)
    assert generate_code() == "00000-0000Z"
    assert asked == [50]


@pytest.mark.parametrize(
    "text",
    [
        "abcde-12345",
        "ABCDE12345",
        "abcde 12345",
        " ab cd e-1 2-345 ",
        "AbCdE\t12345\n",
        "a-b-c-d-e-1-2-3-4-5",
        "ABCDE\u201312345",  # en dash from a phone keyboard
    ],
)
def test_format_variants_accepted(text: str) -> None:
    assert normalize_code(text) == "ABCDE-12345"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IIIII-LLLLL", "11111-11111"),
        ("iiiii-lllll", "11111-11111"),
        ("OOOOO-ooooo", "00000-00000"),
        ("ABCDE-1234O", "ABCDE-12340"),
        ("L0Ll0-I1i1o", "10110-11110"),
    ],
)
def test_confusables_mapped(text: str, expected: str) -> None:
    assert normalize_code(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ABCDE-1234U", "'U' is not a voucher code symbol"),
        ("abcde-1234u", "'u' is not a voucher code symbol"),
        ("ABCDE-1234!", "'!' is not a voucher code symbol"),
        ("ABCDE_12345", "'_' is not a voucher code symbol"),
        ("ABCDE-1234\u00df", "is not a voucher code symbol"),  # 'ß'.upper() == 'SS'
        ("ABCDE-1234\u0131", "is not a voucher code symbol"),  # dotless i uppers to I
        ("ABCDE-1234\uff11", "is not a voucher code symbol"),  # full-width digit 1
    ],
)
def test_bad_symbol_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidCode, match=re.escape(message)):
        normalize_code(text)


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("   -  ", 0), ("ABCDE-1234", 9), ("ABCDE-123456", 11), ("ABCDE", 5)],
)
def test_wrong_length_rejected(text: str, count: int) -> None:
    with pytest.raises(InvalidCode, match=f"has 10 symbols, got {count}$"):
        normalize_code(text)


def test_very_long_input_rejected_without_scanning() -> None:
    with pytest.raises(InvalidCode, match="far longer"):
        normalize_code("A" * 100_000)


@pytest.mark.parametrize("value", [None, 1234567890, b"ABCDE12345", ["ABCDE-12345"]])
def test_non_string_rejected(value: object) -> None:
    with pytest.raises(InvalidCode, match="must be text"):
        normalize_code(value)  # type: ignore[arg-type]


def test_invalid_code_is_a_value_error() -> None:
    assert issubclass(InvalidCode, ValueError)
    assert issubclass(VoucherRejected, ValueError)


_symbol = st.sampled_from(ALPHABET)
_codes = st.lists(_symbol, min_size=10, max_size=10).map(
    lambda s: f"{''.join(s[:5])}-{''.join(s[5:])}"
)
_separator = st.sampled_from(["", " ", "-", "  ", "\t", " - ", "\u00a0", "\n"])


@given(
    code=_codes,
    lower=st.lists(st.booleans(), min_size=10, max_size=10),
    seps=st.lists(_separator, min_size=11, max_size=11),
    confuse=st.lists(st.booleans(), min_size=10, max_size=10),
)
def test_normalize_any_variant_of_a_valid_code(
    code: str, lower: list[bool], seps: list[str], confuse: list[bool]
) -> None:
    raw = code.replace("-", "")
    confusable = {"1": "IL", "0": "O"}
    pieces = [seps[0]]
    for i, ch in enumerate(raw):
        if confuse[i] and ch in confusable:
            ch = confusable[ch][i % len(confusable[ch])]
        pieces.append(ch.lower() if lower[i] else ch)
        pieces.append(seps[i + 1])
    variant = "".join(pieces)
    assert normalize_code(variant) == code
    assert normalize_code(code) == code


@given(st.integers(min_value=0, max_value=2**50 - 1))
def test_code_int_round_trip(value: int) -> None:
    code = generate_code(FixedRandom(value))
    assert CODE_RE.fullmatch(code)
    assert code_to_int(code) == value


# --- the Voucher record --------------------------------------------------------------------


def test_voucher_is_frozen() -> None:
    v = make_voucher()
    with pytest.raises(FrozenInstanceError):
        v.seconds_left = 0  # type: ignore[misc]


def test_minutes_left_rounds_down() -> None:
    assert make_voucher(seconds_left=3600).minutes_left == 60
    assert make_voucher(seconds_left=3599).minutes_left == 59
    assert make_voucher(seconds_left=59).minutes_left == 0
    assert make_voucher(seconds_left=0).minutes_left == 0


def test_spend_reduces_balance_and_returns_new_voucher() -> None:
    v = make_voucher()
    after = v.spend(600)
    assert after.seconds_left == 3000
    assert after.seconds_total == 3600
    assert v.seconds_left == 3600  # original unchanged
    assert after.code == v.code
    assert after.spend(0) == after


def test_spend_never_below_zero() -> None:
    v = make_voucher(seconds_left=100)
    assert v.spend(100).seconds_left == 0
    assert v.spend(10_000).seconds_left == 0
    assert v.spend(10_000).spend(5).seconds_left == 0


def test_spend_negative_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        make_voucher().spend(-1)


def test_expiry_boundary() -> None:
    v = make_voucher()
    assert not v.is_expired(EXPIRES - timedelta(microseconds=1))
    assert v.is_expired(EXPIRES)
    assert v.is_expired(EXPIRES + timedelta(days=1))


def test_expiry_compares_instants_across_zones() -> None:
    v = make_voucher()
    just_before_utc = EXPIRES.astimezone(UTC) - timedelta(seconds=1)
    assert not v.is_expired(just_before_utc)
    assert v.is_expired(EXPIRES.astimezone(timezone(timedelta(hours=-5))))


def test_naive_now_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_voucher().is_expired(datetime(2025, 5, 2, 10, 0))


def test_usable() -> None:
    now = SOLD + timedelta(days=1)
    assert make_voucher().usable(now)
    assert not make_voucher(seconds_left=0).usable(now)
    assert not make_voucher().voided("refund").usable(now)
    assert not make_voucher().usable(EXPIRES)


def test_voided() -> None:
    v = make_voucher().voided("sold by mistake")
    assert v.void is True
    assert v.void_reason == "sold by mistake"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"code": "abcde-12345"}, "canonical"),
        ({"code": "ABCDE12345"}, "canonical"),
        ({"code": "ABCDE-1234U"}, "not a voucher code symbol"),
        ({"cac_id": ""}, "cac_id"),
        ({"seconds_total": -1, "seconds_left": 0}, "seconds_total"),
        ({"seconds_left": 3601}, "seconds_left"),
        ({"seconds_left": -1}, "seconds_left"),
        ({"price": -1}, "price"),
        ({"category": ""}, "category"),
        ({"sold_at": datetime(2025, 5, 1, 10, 0)}, "sold_at must be a timezone-aware"),
        ({"expires_at": datetime(2025, 6, 1, 10, 0)}, "expires_at must be a timezone-aware"),
        ({"expires_at": SOLD - timedelta(seconds=1)}, "before sold_at"),
        ({"void_reason": "why"}, "void_reason"),
    ],
)
def test_voucher_validation(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_voucher(**changes)


# --- serialisation -------------------------------------------------------------------------


def test_to_dict_is_json_friendly() -> None:
    d = make_voucher(category="student").to_dict()
    assert d == {
        "code": "ABCDE-12345",
        "cac_id": "ma-oriental-oujda-001",
        "seconds_total": 3600,
        "seconds_left": 3600,
        "price": 800,
        "category": "student",
        "sold_at": "2025-05-01T10:00:00+01:00",
        "expires_at": "2025-05-31T10:00:00+01:00",
        "sold_by": "amina",
        "void": False,
        "void_reason": None,
    }


@pytest.mark.parametrize(
    "voucher",
    [
        make_voucher(),
        make_voucher(category="student", seconds_left=17),
        make_voucher(
            sold_at=datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC),
            expires_at=datetime(2025, 3, 31, 23, 59, tzinfo=UTC),
        ),
        make_voucher().voided("refund"),
    ],
)
def test_dict_round_trip(voucher: Voucher) -> None:
    data = json.loads(json.dumps(voucher.to_dict()))
    back = Voucher.from_dict(data)
    assert back == voucher
    assert back.sold_at.utcoffset() == voucher.sold_at.utcoffset()
    assert back.to_dict() == voucher.to_dict()


def test_from_dict_defaults_void_fields() -> None:
    data = make_voucher().to_dict()
    del data["void"], data["void_reason"]
    assert Voucher.from_dict(data) == make_voucher()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("code", None, r"voucher\.code: expected str"),
        ("seconds_left", "60", r"voucher\.seconds_left: expected int"),
        ("seconds_left", True, r"voucher\.seconds_left: expected int"),
        ("price", 8.5, r"voucher\.price: expected int"),
        ("category", 3, r"voucher\.category: expected text or null"),
        ("sold_at", "yesterday", r"voucher\.sold_at: not an ISO 8601 time"),
        ("expires_at", "2025-03-31T10:00:00", r"voucher\.expires_at: needs a UTC offset"),
        ("void", "no", r"voucher\.void: expected bool"),
    ],
)
def test_from_dict_rejects_bad_fields(key: str, value: object, message: str) -> None:
    data = make_voucher().to_dict()
    data[key] = value
    with pytest.raises(ValueError, match=message):
        Voucher.from_dict(data)


def test_from_dict_rejects_missing_field() -> None:
    data = make_voucher().to_dict()
    del data["cac_id"]
    with pytest.raises(ValueError, match=r"voucher\.cac_id: missing"):
        Voucher.from_dict(data)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ValueError, match="expected an object"):
        Voucher.from_dict(["ABCDE-12345"])  # type: ignore[arg-type]


# --- redemption rules ----------------------------------------------------------------------

CAC = "ma-oriental-oujda-001"
NOW = SOLD + timedelta(days=2)


def test_redeemable_voucher_returned() -> None:
    v = make_voucher()
    assert check_redeemable(v, CAC, NOW) is v


@pytest.mark.parametrize(
    ("voucher", "cac_id", "now", "reason"),
    [
        (None, CAC, NOW, "unknown"),
        (make_voucher(), "ma-oriental-nador-002", NOW, "other_cac"),
        (make_voucher().voided("refund"), CAC, NOW, "void"),
        (make_voucher(), CAC, EXPIRES, "expired"),
        (make_voucher(seconds_left=0), CAC, NOW, "empty"),
        (make_voucher().spend(3600), CAC, NOW, "empty"),
    ],
)
def test_rejection_reasons(
    voucher: Voucher | None, cac_id: str, now: datetime, reason: str
) -> None:
    with pytest.raises(VoucherRejected) as info:
        check_redeemable(voucher, cac_id, now)
    assert info.value.reason == reason
    assert str(info.value)  # a human message for the operator or kiosk
    assert info.value.message == str(info.value)


def test_rejection_order_most_fundamental_first() -> None:
    # A void, expired, empty voucher from another CAC is reported as from another CAC:
    # a station must not learn details of vouchers that are not its own.
    worst = make_voucher(seconds_left=0).voided("refund")
    with pytest.raises(VoucherRejected) as info:
        check_redeemable(worst, "elsewhere", EXPIRES + timedelta(days=1))
    assert info.value.reason == "other_cac"
    with pytest.raises(VoucherRejected) as info:
        check_redeemable(worst, CAC, EXPIRES + timedelta(days=1))
    assert info.value.reason == "void"
    with pytest.raises(VoucherRejected) as info:
        check_redeemable(make_voucher(seconds_left=0), CAC, EXPIRES + timedelta(days=1))
    assert info.value.reason == "expired"


def test_partly_spent_voucher_still_redeemable() -> None:
    v = make_voucher().spend(3540)
    assert v.minutes_left == 1
    assert check_redeemable(v, CAC, NOW) == v


# ---------------------------------------------------------------- the stored entry (VoucherEntry)


def _entry(**kw: object) -> VoucherEntry:
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    v = Voucher(code=generate_code(), cac_id="ma-test-001", seconds_total=1800,
                seconds_left=1800, price=400, category=None, sold_at=now,
                expires_at=now + timedelta(days=30), sold_by="amina")
    return VoucherEntry(v, "sale-1", **kw)  # type: ignore[arg-type]


def test_an_entry_pays_for_one_session_at_a_time() -> None:
    e = _entry().reserve("sess-1")
    assert e.in_use == "sess-1"
    with pytest.raises(VoucherStateError, match="in use"):
        e.reserve("sess-2")
    freed = e.release(600)
    assert (freed.in_use, freed.voucher.seconds_left) == (None, 1200)


@pytest.mark.parametrize(("spent", "refund"), [
    (0, 400),  # unused: the sale reversed in full
    (1, 386),  # 29 whole minutes left of 30: 400 * 29 // 30 = 386.67, rounded down
    (59, 386),
    (60, 386),  # exactly 29:00 left
    (61, 373),  # 28:59 left: 28 whole minutes, 400 * 28 // 30 = 373.33
    (10 * 60, 266),  # 20 minutes: 266.67
    (29 * 60 + 59, 0),  # 1 second left: no whole minute
    (1800, 0),  # used up
])
def test_refund_is_the_unused_whole_minutes_at_the_sold_price_rounded_down(
        spent: int, refund: int) -> None:
    assert _entry().release(spent).voucher.refund == refund


def test_void_is_refused_in_use_and_twice() -> None:
    with pytest.raises(VoucherStateError, match="in use"):
        _entry(in_use="sess-1").void("refund")
    done = _entry().void("refund")
    assert (done.voucher.void, done.voucher.void_reason) == (True, "refund")
    with pytest.raises(VoucherStateError, match="already void"):
        done.void("again")
    assert VoucherEntry.from_dict(done.to_dict()) == done
