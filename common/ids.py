"""Identifier patterns of the contract (CONTRACT §2, §6), spelled once.

ASCII-only character classes on purpose: ``str.isdigit()`` accepts "²".
"""

from __future__ import annotations

import re

CAC_ID_PATTERN = "[a-z0-9-]{3,64}"
"""A CAC id; the hub id and topic ids follow the same rule."""
STATION_ID_PATTERN = "[a-z0-9-]{1,32}"
"""A station id within a CAC; a hub worker id follows the same rule."""

CAC_ID_RE = re.compile(CAC_ID_PATTERN)
STATION_ID_RE = re.compile(STATION_ID_PATTERN)


def is_cac_id(value: object) -> bool:
    return isinstance(value, str) and CAC_ID_RE.fullmatch(value) is not None


def is_station_id(value: object) -> bool:
    return isinstance(value, str) and STATION_ID_RE.fullmatch(value) is not None
