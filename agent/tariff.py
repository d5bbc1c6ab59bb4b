"""Compatibility re-export: the tariff rules live in ``agent.meter.tariff``."""

from agent.meter.tariff import (
    Band,
    Tariff,
    UnknownCategory,
    block_count,
    block_prices,
    compute_fee,
    concession_percent,
    quote,
)

__all__ = ["Band", "Tariff", "UnknownCategory", "block_count", "block_prices", "compute_fee",
           "concession_percent", "quote"]
