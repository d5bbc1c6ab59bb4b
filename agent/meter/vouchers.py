"""Voucher codes and the rules for redeeming a voucher (CONTRACT §4): pure, time passed in.

A code is 10 symbols of Crockford base32 (50 random bits) shown as ``XXXXX-XXXXX``.
Typed input is forgiving: any case, spaces and hyphens ignored, and the Crockford
confusables I and L read as 1, O as 0.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, TypeVar

from common.codes import CROCKFORD_ALPHABET

ALPHABET = CROCKFORD_ALPHABET

CODE_SYMBOLS = 10
CODE_BITS = 5 * CODE_SYMBOLS
GROUP = 5

_VALUE = {symbol: index for index, symbol in enumerate(ALPHABET)}
_CONFUSABLES = {"I": "1", "L": "1", "O": "0"}
# Separators a person may type between groups: whitespace and the usual dash characters
# (a phone keyboard or a pasted receipt may give an en dash or a minus sign).
_SEPARATORS = re.compile(r"[\s\-\u2010\u2011\u2012\u2013\u2014\u2212]+")
# Anything this long cannot be a code with separators; stop before scanning it.
_MAX_INPUT_CHARS = 64

RejectReason = Literal["unknown", "other_cac", "void", "expired", "empty"]


class InvalidCode(ValueError):
    """Text that cannot be read as a voucher code; the message says why, for a person."""


class VoucherRejected(ValueError):
    """A voucher that may not be redeemed; ``reason`` is a stable code for the API."""

    def __init__(self, reason: RejectReason, message: str) -> None:
        super().__init__(message)
        self.reason: RejectReason = reason
        self.message = message


def _encode(value: int) -> str:
    symbols = []
    for _ in range(CODE_SYMBOLS):
        symbols.append(ALPHABET[value & 0x1F])
        value >>= 5
    raw = "".join(reversed(symbols))
    return f"{raw[:GROUP]}-{raw[GROUP:]}"


def generate_code(rng: secrets.SystemRandom | None = None) -> str:
    """A fresh canonical code carrying 50 bits from the OS's secure random source."""
    value = secrets.randbits(CODE_BITS) if rng is None else rng.getrandbits(CODE_BITS)
    return _encode(value)


def normalize_code(text: str) -> str:
    """The canonical ``XXXXX-XXXXX`` form of a typed code, or InvalidCode saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidCode("a voucher code must be text")
    if len(text) > _MAX_INPUT_CHARS:
        raise InvalidCode(f"a voucher code has {CODE_SYMBOLS} symbols; this text is far longer")
    symbols: list[str] = []
    for ch in _SEPARATORS.sub("", text):
        # Check before upper(): 'ß'.upper() is 'SS' and 'ı'.upper() is 'I'.
        upper = ch.upper() if ch.isascii() else ch
        upper = _CONFUSABLES.get(upper, upper)
        if upper not in _VALUE:
            raise InvalidCode(f"{ch!r} is not a voucher code symbol")
        symbols.append(upper)
    if len(symbols) != CODE_SYMBOLS:
        raise InvalidCode(f"a voucher code has {CODE_SYMBOLS} symbols, got {len(symbols)}")
    raw = "".join(symbols)
    return f"{raw[:GROUP]}-{raw[GROUP:]}"


def code_to_int(text: str) -> int:
    """The 50-bit number a code stands for (accepts any form normalize_code accepts)."""
    value = 0
    for symbol in normalize_code(text).replace("-", ""):
        value = (value << 5) | _VALUE[symbol]
    return value


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")


@dataclass(frozen=True)
class Voucher:
    """Prepaid time sold at one CAC; ``seconds_left`` is the balance still to spend."""

    code: str
    cac_id: str
    seconds_total: int
    seconds_left: int
    price: int
    category: str | None
    sold_at: datetime
    expires_at: datetime
    sold_by: str
    void: bool = False
    void_reason: str | None = None

    def __post_init__(self) -> None:
        if normalize_code(self.code) != self.code:
            raise InvalidCode(f"voucher code {self.code!r} is not in canonical form")
        if not self.cac_id:
            raise ValueError("cac_id must not be empty")
        if self.seconds_total < 0:
            raise ValueError("seconds_total must not be negative")
        if not 0 <= self.seconds_left <= self.seconds_total:
            raise ValueError("seconds_left must be between 0 and seconds_total")
        if self.price < 0:
            raise ValueError("price must not be negative")
        if self.category is not None and not self.category:
            raise ValueError("category must be a name or None, not empty")
        _require_aware("sold_at", self.sold_at)
        _require_aware("expires_at", self.expires_at)
        if self.expires_at < self.sold_at:
            raise ValueError("expires_at must not be before sold_at")
        if not self.void and self.void_reason is not None:
            raise ValueError("void_reason is only for a void voucher")

    def is_expired(self, now: datetime) -> bool:
        """True from the instant ``expires_at`` on."""
        _require_aware("now", now)
        return now >= self.expires_at

    def usable(self, now: datetime) -> bool:
        """True if the voucher could start a session at ``now``."""
        return not self.void and not self.is_expired(now) and self.seconds_left > 0

    @property
    def minutes_left(self) -> int:
        """Whole minutes left on the balance (rounded down)."""
        return self.seconds_left // 60

    def spend(self, seconds: int) -> Voucher:
        """This voucher with ``seconds`` taken off the balance, which stops at 0."""
        if seconds < 0:
            raise ValueError("cannot spend a negative number of seconds")
        return replace(self, seconds_left=max(0, self.seconds_left - seconds))

    def voided(self, reason: str) -> Voucher:
        """This voucher made void, e.g. refunded or sold by mistake."""
        return replace(self, void=True, void_reason=reason)

    @property
    def refund(self) -> int:
        """What a void gives back: the unused whole minutes at the price it was sold for,
        rounded down to the centime (``price * minutes_left // minutes``). An unused voucher
        is refunded in full, a used-up one gets nothing; the minute a session has started
        on is not refunded."""
        minutes = self.seconds_total // 60
        if minutes <= 0:
            return 0
        return self.price * min(self.minutes_left, minutes) // minutes

    def finished(self) -> bool:
        """True once nothing can ever be spent from it: void or used up."""
        return self.void or self.seconds_left <= 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; datetimes as ISO 8601 with their UTC offset."""
        return {
            "code": self.code,
            "cac_id": self.cac_id,
            "seconds_total": self.seconds_total,
            "seconds_left": self.seconds_left,
            "price": self.price,
            "category": self.category,
            "sold_at": self.sold_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "sold_by": self.sold_by,
            "void": self.void,
            "void_reason": self.void_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Voucher:
        """Inverse of to_dict; ValueError naming the field for anything malformed."""
        if not isinstance(data, Mapping):
            raise VoucherDataError("voucher: expected an object")
        return cls(
            code=_field(data, "code", str),
            cac_id=_field(data, "cac_id", str),
            seconds_total=_field(data, "seconds_total", int),
            seconds_left=_field(data, "seconds_left", int),
            price=_field(data, "price", int),
            category=_optional(data, "category"),
            sold_at=_timestamp(data, "sold_at"),
            expires_at=_timestamp(data, "expires_at"),
            sold_by=_field(data, "sold_by", str),
            void=_field(data, "void", bool, default=False),
            void_reason=_optional(data, "void_reason"),
        )


class VoucherDataError(ValueError):
    """A stored or received voucher record is malformed; the message names the field."""


_MISSING = object()
_T = TypeVar("_T")


def _field(data: Mapping[str, Any], key: str, kind: type[_T], default: Any = _MISSING) -> _T:
    value = data.get(key, default)
    if value is _MISSING:
        raise VoucherDataError(f"voucher.{key}: missing")
    # bool is an int subclass; a stored true/false is never a count of seconds.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VoucherDataError(f"voucher.{key}: expected {kind.__name__}, got {value!r}")
    return value


def _optional(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise VoucherDataError(f"voucher.{key}: expected text or null, got {value!r}")
    return value


def _timestamp(data: Mapping[str, Any], key: str) -> datetime:
    text = _field(data, key, str)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise VoucherDataError(f"voucher.{key}: not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise VoucherDataError(f"voucher.{key}: needs a UTC offset: {text!r}")
    return value


class VoucherStateError(ValueError):
    """A change the stored voucher's state does not allow (in use, already void)."""


@dataclass(frozen=True)
class VoucherEntry:
    """A voucher as the ledger keeps it: the voucher, its sale, and the session using it.

    A voucher pays for one session at a time (``in_use`` holds that session's id); the
    session's close spends what it billed and frees the voucher.
    """

    voucher: Voucher
    sale_id: str
    in_use: str | None = None

    def reserve(self, session_id: str) -> VoucherEntry:
        """This entry paying for ``session_id``; refused while another session uses it."""
        if self.in_use:
            raise VoucherStateError("voucher is in use in another session")
        return replace(self, in_use=session_id)

    def release(self, spent_seconds: int) -> VoucherEntry:
        """This entry after its session closed having billed ``spent_seconds``."""
        return replace(self, voucher=self.voucher.spend(spent_seconds), in_use=None)

    def void(self, reason: str) -> VoucherEntry:
        """This entry made void; refused while a session uses it or if it is void already."""
        if self.in_use:
            raise VoucherStateError("the voucher is in use; end its session first")
        if self.voucher.void:
            raise VoucherStateError("the voucher is already void")
        return replace(self, voucher=self.voucher.voided(reason))

    def dead(self, cutoff: datetime) -> bool:
        """True if it can leave the live file: not in use, and expired before ``cutoff`` or
        finished and sold before it."""
        if self.in_use:
            return False
        v = self.voucher
        return v.expires_at <= cutoff or (v.finished() and v.sold_at <= cutoff)

    def to_dict(self) -> dict[str, Any]:
        return {"voucher": self.voucher.to_dict(), "sale_id": self.sale_id,
                "in_use": self.in_use}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VoucherEntry:
        in_use = data.get("in_use")
        return cls(voucher=Voucher.from_dict(data["voucher"]), sale_id=str(data["sale_id"]),
                   in_use=str(in_use) if in_use else None)


def check_redeemable(v: Voucher | None, cac_id: str, now: datetime) -> Voucher:
    """The voucher if it may start a session at this CAC now, else VoucherRejected."""
    if v is None:
        raise VoucherRejected("unknown", "No voucher has this code. Check the code and retry.")
    if v.cac_id != cac_id:
        raise VoucherRejected("other_cac", "This voucher was sold at another centre.")
    if v.void:
        raise VoucherRejected("void", "This voucher has been cancelled.")
    if v.is_expired(now):
        raise VoucherRejected("expired", "This voucher has expired.")
    if v.seconds_left <= 0:
        raise VoucherRejected("empty", "This voucher has no time left.")
    return v
