"""The provisioning directory: where each file lives, and the registry of identities.

``DIR/provision.json`` (0600) is the source of truth: the hub's settings, every identity's
password *hash* (never a password) and the CACs. The broker's password and ACL files are
regenerated from it on every change, so they can never drift apart.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from provisioning.files import write_file

FORMAT = 1


class ProvisionError(Exception):
    """A provisioning step cannot be done; the message says why, in one line."""


@dataclass(frozen=True)
class Layout:
    """Paths inside a hub's provisioning directory."""

    root: Path

    @property
    def registry(self) -> Path:
        return self.root / "provision.json"

    @property
    def mosquitto_conf(self) -> Path:
        return self.root / "mosquitto.conf"

    @property
    def hub_toml(self) -> Path:
        return self.root / "hub.toml"

    @property
    def broker_dir(self) -> Path:
        """What the broker reads and writes: it may belong to the broker's own user."""
        return self.root / "broker"

    @property
    def password_file(self) -> Path:
        return self.broker_dir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.broker_dir / "acl"

    @property
    def persistence_dir(self) -> Path:
        return self.broker_dir / "data"

    @property
    def server_cert(self) -> Path:
        return self.broker_dir / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.broker_dir / "server.key"

    @property
    def broker_ca(self) -> Path:
        return self.broker_dir / "ca.crt"

    @property
    def tls_dir(self) -> Path:
        """The CA's private key: needed again only to issue a new server certificate."""
        return self.root / "tls"

    @property
    def ca_cert(self) -> Path:
        return self.tls_dir / "ca.crt"

    def cac_dir(self, cac_id: str) -> Path:
        return self.root / "cacs" / cac_id

    @property
    def revoked_dir(self) -> Path:
        return self.root / "revoked"


@dataclass
class Registry:
    hub_id: str
    hub_user: str
    hub_host: str  # the name or address agents connect to
    hub_local_host: str  # the address the hub itself uses (on the broker's machine)
    bind: str | None
    mqtt_port: int
    http_port: int
    tls: bool
    broker_user: str | None
    hashes: dict[str, str] = field(default_factory=dict)  # username -> $7$ hash
    cacs: dict[str, dict[str, Any]] = field(default_factory=dict)
    revoked: dict[str, str] = field(default_factory=dict)  # cac id -> when
    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {"user", ...}

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2, sort_keys=True) + "\n"

    def save(self, layout: Layout) -> None:
        write_file(layout.registry, self.to_json())

    @classmethod
    def load(cls, layout: Layout) -> Registry:
        path = layout.registry
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ProvisionError(
                f"{layout.root} is not a provisioned hub (no {path.name}); "
                "run cac-provision init-hub first") from None
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"cannot read {path}: {exc}") from None
        if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
            raise ProvisionError(f"{path} is not a format {FORMAT} provisioning registry")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ProvisionError(f"{path} is damaged: {exc}") from None
