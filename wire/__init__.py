"""The wire contract between CAC agents and the hub (CONTRACT §6): topics and payloads.

Nothing outside this package spells an MQTT topic string.
"""

SCHEMA_VERSION = 1
