"""Fixtures for the content tests live in tests/content_support.py."""

from content_support import _no_background_sync, agent_factory, hub, proxy

__all__ = ["_no_background_sync", "agent_factory", "hub", "proxy"]
