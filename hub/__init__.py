"""hub: the regional hub (MQTT ingest, fleet state, dashboard, reports)."""

__version__ = "0.1.0"
