"""The CAC site agent: metering, ledger, local API, reporting."""

__version__ = "0.1.0"
