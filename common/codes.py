"""The voucher code alphabet (CONTRACT §4): Crockford base32, without I, L, O and U."""

from __future__ import annotations

CROCKFORD_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CROCKFORD_VALUE = {symbol: index for index, symbol in enumerate(CROCKFORD_ALPHABET)}


def crockford_value(code: str) -> int:
    """The integer a canonical code stands for (hyphens ignored); KeyError on another symbol."""
    value = 0
    for ch in code.replace("-", ""):
        value = value * 32 + CROCKFORD_VALUE[ch]
    return value
