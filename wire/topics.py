"""MQTT topic builders and parsers (CONTRACT §6)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from common.ids import CAC_ID_RE

CAC_ROOT = "cac/v1"
HUB_ROOT = "hub/v1"
SHARED_GROUP = "hub"  # MQTT 5 shared-subscription group of hub ingest workers



class Kind(StrEnum):
    STATUS = "status"
    HEALTH = "health"
    USAGE = "usage"
    ACK = "ack"
    CMD = "cmd"
    CMD_ACK = "cmd/ack"


# what a CAC publishes and the hub consumes
FROM_CAC = (Kind.STATUS, Kind.HEALTH, Kind.USAGE, Kind.CMD_ACK)
# what the hub publishes and a CAC consumes
TO_CAC = (Kind.ACK, Kind.CMD)


class TopicError(ValueError):
    """Not a topic of this contract."""


def _check_id(cac_id: str) -> str:
    if not CAC_ID_RE.fullmatch(cac_id):
        raise TopicError(f"bad CAC id {cac_id!r}")
    return cac_id


def cac_topic(cac_id: str, kind: Kind) -> str:
    return f"{CAC_ROOT}/{_check_id(cac_id)}/{kind}"


def hub_status_topic(hub_id: str) -> str:
    return f"{HUB_ROOT}/{_check_id(hub_id)}/status"


def hub_subscriptions(shared: bool = False) -> list[str]:
    """Topic filters the hub subscribes to; ``shared`` spreads them over hub workers.

    Only usage is shared (CONTRACT §9: each record handled by one worker); status, health
    and command answers reach every worker, so each serves the whole fleet view.
    """
    out = []
    for kind in FROM_CAC:
        flt = f"{CAC_ROOT}/+/{kind}"
        if shared and kind is Kind.USAGE:
            flt = f"$share/{SHARED_GROUP}/{flt}"
        out.append(flt)
    return out


def agent_subscriptions(cac_id: str) -> list[str]:
    return [cac_topic(cac_id, kind) for kind in TO_CAC]


@dataclass(frozen=True)
class CacTopic:
    cac_id: str
    kind: Kind


def parse_cac_topic(topic: str) -> CacTopic:
    """``cac/v1/{cac_id}/{kind}`` -> CacTopic; anything else raises TopicError."""
    prefix = CAC_ROOT + "/"
    if not topic.startswith(prefix):
        raise TopicError(f"not under {CAC_ROOT}/: {topic[:80]!r}")
    cac_id, sep, rest = topic[len(prefix):].partition("/")
    if not sep:
        raise TopicError(f"no kind in topic {topic[:80]!r}")
    try:
        kind = Kind(rest)
    except ValueError:
        raise TopicError(f"unknown kind {rest[:40]!r}") from None
    return CacTopic(_check_id(cac_id), kind)
