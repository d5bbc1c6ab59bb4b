"""common/ids.py and common/codes.py: the contract's id patterns and the voucher alphabet."""

from __future__ import annotations

import pytest

from common.codes import CROCKFORD_ALPHABET, crockford_value
from common.ids import is_cac_id, is_station_id


@pytest.mark.parametrize("value", ["abc", "ma-rabat-01", "a" * 64])
def test_good_cac_ids(value: str) -> None:
    assert is_cac_id(value)


@pytest.mark.parametrize("value", ["ab", "a" * 65, "Rabat", "ma_01", "ma/01", "x²y", "ab\n", 7])
def test_bad_cac_ids(value: object) -> None:
    assert not is_cac_id(value)


def test_station_ids() -> None:
    assert is_station_id("s1") and is_station_id("a" * 32)
    assert not is_station_id("") and not is_station_id("a" * 33) and not is_station_id("S1")


def test_the_alphabet_leaves_out_the_confusable_letters() -> None:
    assert len(CROCKFORD_ALPHABET) == len(set(CROCKFORD_ALPHABET)) == 32
    assert not set("ILOU") & set(CROCKFORD_ALPHABET)


def test_code_values() -> None:
    assert crockford_value("00000-00000") == 0
    assert crockford_value("00000-00010") == 32
    assert crockford_value("ZZZZZ-ZZZZZ") == 2**50 - 1
    with pytest.raises(KeyError):
        crockford_value("I0000-00000")
