"""The broker's files: ``mosquitto.conf`` and the ACL file (CONTRACT §1, §6).

ACLs are written as one ``user`` block per identity rather than ``pattern`` lines, so that
revoking a CAC removes exactly its lines and no rule ever applies to a name it was not
written for. Topics come from ``wire.topics`` (the one module that spells them).

Mosquitto checks a subscription's filter without its ``$share/GROUP/`` prefix, so the hub's
``read`` lines cover its shared subscriptions too (tested against the real broker).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wire.messages import MAX_PAYLOAD_BYTES
from wire.topics import CAC_ROOT, FROM_CAC, HUB_ROOT, TO_CAC, Kind

# Broker tuning the hub needs (FIELD-NOTES, issue 3): the default per-client queue of 1000
# overflowed in every burst test, and the hub keeps a persistent session.
MAX_QUEUED_MESSAGES = 100_000
MAX_INFLIGHT_MESSAGES = 100
PERSISTENT_CLIENT_EXPIRATION = "30d"
AUTOSAVE_INTERVAL = 60  # seconds between writes of the in-memory database to disk


@dataclass(frozen=True)
class TlsFiles:
    """Absolute paths of the listener's CA, certificate and private key."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class BrokerSettings:
    port: int
    bind: str | None  # None: every interface
    password_file: Path
    acl_file: Path
    persistence_dir: Path
    tls: TlsFiles | None = None
    user: str | None = None  # the user the broker runs as (it drops root to this user)


def mosquitto_conf(s: BrokerSettings) -> str:
    """The text of ``mosquitto.conf`` for a provisioned hub broker."""
    lines = [
        "# Written by cac-provision: edit with care; cac-provision does not read it back.",
        "# The password and ACL files are rewritten by add-cac / revoke-cac;",
        "# send the broker SIGHUP to reload them.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {s.password_file}",
        f"acl_file {s.acl_file}",
        "",
        "# state survives restarts: the hub's and the agents' persistent sessions",
        "persistence true",
        f"persistence_location {s.persistence_dir}/",
        f"autosave_interval {AUTOSAVE_INTERVAL}",
        f"persistent_client_expiration {PERSISTENT_CLIENT_EXPIRATION}",
        "",
        "# a slow hub must not lose messages (FIELD-NOTES: the default queue of 1000 overflows)",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_inflight_messages {MAX_INFLIGHT_MESSAGES}",
        "set_tcp_nodelay true",
        "# no message is larger than the wire's limit (wire/messages.py MAX_PAYLOAD_BYTES)",
        f"message_size_limit {MAX_PAYLOAD_BYTES}",
    ]
    if s.user is not None:
        lines.append(f"user {s.user}")
    lines += [
        "",
        f"listener {s.port}" + (f" {s.bind}" if s.bind else ""),
        "# the client id is the username: nobody can take over another identity's session",
        "use_username_as_clientid true",
    ]
    if s.tls is not None:
        lines += [
            f"cafile {s.tls.ca}",
            f"certfile {s.tls.cert}",
            f"keyfile {s.tls.key}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(lines) + "\n"


def _cac_filter(cac: str, kind: Kind) -> str:
    return f"{CAC_ROOT}/{cac}/{kind}"


def hub_acl_lines() -> list[str]:
    """The hub reads every CAC, writes ``ack`` and ``cmd``, and owns its status topic."""
    lines = [f"topic read {_cac_filter('+', kind)}" for kind in FROM_CAC]
    lines += [f"topic write {_cac_filter('+', kind)}" for kind in TO_CAC]
    lines.append(f"topic readwrite {HUB_ROOT}/+/status")
    return lines


def cac_acl_lines(cac_id: str) -> list[str]:
    """A CAC publishes only its own ``FROM_CAC`` topics and reads only its ``ack`` and ``cmd``."""
    lines = [f"topic write {_cac_filter(cac_id, kind)}" for kind in FROM_CAC]
    lines += [f"topic read {_cac_filter(cac_id, kind)}" for kind in TO_CAC]
    return lines


def acl_file(hub_user: str, cac_ids: Iterable[str], worker_users: Iterable[str] = ()) -> str:
    """The text of the ACL file: no lines for anonymous clients, one block per identity
    (each hub worker has the hub's rights under an identity of its own)."""
    out = [
        "# Written by cac-provision (CONTRACT §6): rewritten by add-cac / revoke-cac.",
        "# No topic lines before the first 'user': anonymous clients get nothing.",
        "",
        f"user {hub_user}",
        *hub_acl_lines(),
    ]
    for user in sorted(worker_users):
        out += ["", f"user {user}", *hub_acl_lines()]
    for cac in sorted(cac_ids):
        out += ["", f"user {cac}", *cac_acl_lines(cac)]
    return "\n".join(out) + "\n"
