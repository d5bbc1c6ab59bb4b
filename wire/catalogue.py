"""The till's catalogue (CONTRACT §8): what the counter sells besides time, and sale amounts.

Pure: no I/O, no clock. ``parse_catalogue`` is the one validation of a catalogue, for the
agent's config file's ``[[catalogue]]`` tables, its console and the API's ``PUT``, and for
``set_catalogue`` both where the hub's dashboard sends it and where the agent applies it;
a bad one is a ``ConfigError`` naming the key (``catalogue[2].price``).
Amounts are integer centimes; a concession takes ``floor(gross * (100 - p) / 100)`` off,
as for session fees (§3 step 5).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wire.config_check import ConfigError
from wire.config_check import check_int as _check_int
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import req as _req
from wire.config_check import string as _str
from wire.config_check import table as _table

ITEM_ID_RE = re.compile(r"[a-z0-9-]{1,32}")
LANG_RE = re.compile(r"[a-z]{2,3}")
UNITS = ("page", "item", "hour", "seat")
MAX_PRICE = 10**7  # 100 000.00 MAD a unit
MAX_ITEMS = 200
MAX_QUANTITY = 10_000


@dataclass(frozen=True)
class CatalogueItem:
    id: str
    name: Mapping[str, str]  # language -> name
    price: int  # centimes per unit
    unit: str = "item"

    def label(self, lang: str) -> str:
        """The name in ``lang``, else French, else any, else the id."""
        for key in (lang, "fr", "en"):
            if self.name.get(key):
                return self.name[key]
        return next(iter(self.name.values()), self.id)


def parse_catalogue(raw: object, prefix: str = "catalogue") -> tuple[CatalogueItem, ...]:
    """A list of ``{"id", "name": {lang: text}, "price", "unit"}`` tables, checked."""
    if not isinstance(raw, list):
        raise ConfigError(prefix, "must be an array of tables ([[catalogue]])")
    if len(raw) > MAX_ITEMS:
        raise ConfigError(prefix, f"at most {MAX_ITEMS} items")
    items: list[CatalogueItem] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        key = f"{prefix}[{i}]"
        t = _table(entry, key)
        _no_unknown(t, {"id", "name", "price", "unit"}, key)
        item_id = _str(_req(t, "id", key), f"{key}.id")
        if not ITEM_ID_RE.fullmatch(item_id):
            raise ConfigError(f"{key}.id", f"must match [a-z0-9-]{{1,32}}, got {item_id!r}")
        if item_id in seen:
            raise ConfigError(f"{key}.id", f"duplicate item id {item_id!r}")
        seen.add(item_id)
        names = _table(_req(t, "name", key), f"{key}.name")
        if not names:
            raise ConfigError(f"{key}.name", "needs at least one language, e.g. { fr = \"...\" }")
        for lang, text in names.items():
            if not LANG_RE.fullmatch(str(lang)):
                raise ConfigError(f"{key}.name.{lang}", "language keys are like fr, ar, zgh")
            value = _str(text, f"{key}.name.{lang}")
            if not value.strip() or len(value) > 80:
                raise ConfigError(f"{key}.name.{lang}", "must be 1 to 80 characters")
        price = _check_int(f"{key}.price", _req(t, "price", key), 0, MAX_PRICE)
        unit = _str(t.get("unit", "item"), f"{key}.unit")
        if unit not in UNITS:
            raise ConfigError(f"{key}.unit", f"must be one of {', '.join(UNITS)}, got {unit!r}")
        items.append(CatalogueItem(item_id, {str(k): str(v) for k, v in names.items()},
                                   price, unit))
    return tuple(items)


def catalogue_to_list(items: tuple[CatalogueItem, ...]) -> list[dict[str, Any]]:
    """The inverse of ``parse_catalogue`` (JSON and storage)."""
    return [{"id": it.id, "name": dict(it.name), "price": it.price, "unit": it.unit}
            for it in items]


def sale_amount(unit_price: int, quantity: int, percent_off: int) -> int:
    """``floor(unit_price * quantity * (100 - percent_off) / 100)``, in centimes."""
    if quantity < 1 or unit_price < 0 or not 0 <= percent_off <= 100:
        raise ValueError("a sale needs quantity >= 1, a price >= 0 and a percent in 0..100")
    return unit_price * quantity * (100 - percent_off) // 100
