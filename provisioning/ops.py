"""The three provisioning operations: init-hub, add-cac, revoke-cac (CONTRACT §1).

Each writes its secret files first, then the broker's password and ACL files (regenerated
whole from the registry), then the registry; files holding secrets are 0600 from creation.
Nothing here prints or logs a secret.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common.signing import SigningError, load_private, new_key_file, public_b64
from provisioning.broker import BrokerSettings, TlsFiles, acl_file, mosquitto_conf
from provisioning.bundle import Enrolment, agent_toml, bundle_files, write_qr, write_tarball
from provisioning.configs import (
    AGENT_DATA_DIR,
    AGENT_HTTP_PORT,
    TIMEZONE,
    agent_config,
    hub_config,
    to_toml,
)
from provisioning.files import (
    PUBLIC_MODE,
    Owner,
    broker_owner,
    make_dir,
    write_file,
)
from provisioning.passwd import hash_password, password_file
from provisioning.reach import check_broker_reach
from provisioning.registry import Layout, ProvisionError, Registry
from provisioning.tls import make_ca, make_server_cert

HUB_USER = "hub"
DEFAULT_HUB_ID = "cac-hub"
DEFAULT_MQTT_PORT = 1883
DEFAULT_MQTT_TLS_PORT = 8883
DEFAULT_HTTP_PORT = 8080
DEFAULT_STATIONS = 4
SIGNING_KEY = "content-signing.key"  # the hub's Ed25519 private key (PEM, 0600)
HTTP_CERT, HTTP_KEY = "hub-http.crt", "hub-http.key"  # in tls/: the hub's HTTPS (--tls)
SECRET_BYTES = 24  # 192 random bits; token_urlsafe gives 32 characters
HOST_RE = re.compile(r"[A-Za-z0-9.:_-]{1,253}")
ANY_HOST = "0.0.0.0"  # noqa: S104 - hub dashboard and agent API serve their networks
_ANY = {ANY_HOST, "::"}  # listener addresses meaning "every interface"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def check_host(value: str, what: str) -> str:
    if not HOST_RE.fullmatch(value):
        raise ProvisionError(f"{what} must be a host name or IP address, got {value!r}")
    return value


@dataclass(frozen=True)
class CacResult:
    cac_dir: Path
    agent_toml: Path
    bundle: Path
    qr: Path | None  # None: too many stations for one QR code
    stations: int


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """One provisioning command at a time per directory (the registry is read-modify-write)."""
    fd = os.open(layout.root / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _owner(reg: Registry) -> Owner | None:
    return broker_owner(reg.broker_user)


def _write_broker_auth(layout: Layout, reg: Registry) -> None:
    """Regenerate the password and ACL files from the registry (the broker reads them)."""
    owner = _owner(reg)
    write_file(layout.password_file, password_file(reg.hashes), owner=owner)
    write_file(layout.acl_file, acl_file(reg.hub_user, reg.cacs,
                                         [w["user"] for w in reg.workers.values()]),
               owner=owner)


def init_hub(root: Path, *, hub_id: str = DEFAULT_HUB_ID, mqtt_port: int | None = None,
             http_port: int = DEFAULT_HTTP_PORT, hub_host: str = "127.0.0.1",
             bind: str | None = None, tls: bool = False, broker_user: str | None = None,
             data_dir: Path | None = None) -> Registry:
    """Write a ready hub into ``root``: broker config and auth files, hub.toml, (TLS CA)."""
    layout = Layout(root.resolve())
    if layout.registry.exists():
        raise ProvisionError(f"{root} already holds a provisioned hub ({layout.registry.name}); "
                             "use another --dir, or add CACs with add-cac")
    check_host(hub_host, "--hub-host")
    if bind is not None:
        check_host(bind, "--bind")
    if mqtt_port is None:
        mqtt_port = DEFAULT_MQTT_TLS_PORT if tls else DEFAULT_MQTT_PORT
    local = bind if bind and bind not in _ANY else "127.0.0.1"
    reg = Registry(hub_id=hub_id, hub_user=HUB_USER, hub_host=hub_host, hub_local_host=local,
                   bind=bind, mqtt_port=mqtt_port, http_port=http_port, tls=tls,
                   broker_user=broker_user)
    owner = _owner(reg)
    check_broker_reach(layout.broker_dir, owner)  # before anything is written
    if not layout.root.exists():
        make_dir(layout.root, 0o755)  # the broker's user must get through to broker/
    make_dir(layout.broker_dir, owner=owner)
    make_dir(layout.persistence_dir, owner=owner)

    tls_files: TlsFiles | None = None
    if tls:
        make_dir(layout.tls_dir)
        ca = make_ca(layout.tls_dir, f"CAC hub {hub_id} broker CA")
        write_file(layout.broker_ca, ca.cert.read_bytes(), mode=PUBLIC_MODE, owner=owner)
        make_server_cert(ca, layout.server_cert, layout.server_key,
                         [hub_host, local], owner=owner)
        tls_files = TlsFiles(layout.broker_ca, layout.server_cert, layout.server_key)
        # the hub's HTTPS certificate, from the same CA (the agents already trust it)
        make_server_cert(ca, layout.tls_dir / HTTP_CERT, layout.tls_dir / HTTP_KEY,
                         [hub_host, local])
    if not (layout.root / SIGNING_KEY).exists():  # (kept from an init-hub that failed later)
        new_key_file(layout.root / SIGNING_KEY)  # signs the content (§10); add-cac reads it

    hub_password = new_secret()
    reg.hashes[HUB_USER] = hash_password(hub_password)
    hub_doc = hub_config(
        hub_id=hub_id, data_dir=str(data_dir.resolve() if data_dir else layout.root / "hub-data"),
        mqtt_host=local, mqtt_port=mqtt_port, username=HUB_USER, password=hub_password,
        tls=tls, ca_file="tls/ca.crt" if tls else None,
        http_host=bind if bind else ANY_HOST, http_port=http_port,
        http_tls=(f"tls/{HTTP_CERT}", f"tls/{HTTP_KEY}") if tls else None,
        signing_key_file=SIGNING_KEY)
    header = (f"hub.toml of hub {hub_id}, written by cac-provision at {_now()}.\n"
              "It holds the hub's broker password: keep it mode 0600.")
    write_file(layout.hub_toml, to_toml(hub_doc, header=header))

    _write_broker_auth(layout, reg)
    settings = BrokerSettings(
        port=mqtt_port, bind=bind, password_file=layout.password_file,
        acl_file=layout.acl_file, persistence_dir=layout.persistence_dir, tls=tls_files,
        user=broker_user)
    write_file(layout.mosquitto_conf, mosquitto_conf(settings), mode=PUBLIC_MODE)
    reg.save(layout)
    return reg


def add_cac(root: Path, cac_id: str, *, stations: int = DEFAULT_STATIONS,
            timezone: str = TIMEZONE, agent_host: str = "127.0.0.1",
            agent_port: int = AGENT_HTTP_PORT, agent_data_dir: str = AGENT_DATA_DIR,
            agent_bind: str = ANY_HOST, replace: bool = False) -> CacResult:
    """Give a CAC broker credentials, ACL lines, an agent.toml and an enrolment bundle."""
    layout = Layout(root.resolve())
    Registry.load(layout)  # a clear error before a lock file is made in a wrong directory
    with _locked(layout):
        return _add_cac(layout, cac_id, stations=stations, timezone=timezone,
                        agent_host=agent_host, agent_port=agent_port,
                        agent_data_dir=agent_data_dir, agent_bind=agent_bind, replace=replace)


def _add_cac(layout: Layout, cac_id: str, *, stations: int, timezone: str, agent_host: str,
             agent_port: int, agent_data_dir: str, agent_bind: str,
             replace: bool) -> CacResult:
    reg = Registry.load(layout)
    check_broker_reach(layout.broker_dir, _owner(reg))  # before anything is written
    if cac_id == reg.hub_user:
        raise ProvisionError(f"{cac_id!r} is the hub's broker user name; choose another CAC id")
    if cac_id in reg.cacs and not replace:
        raise ProvisionError(
            f"CAC {cac_id} already exists (added {reg.cacs[cac_id].get('created_at')}); "
            "use --replace to issue it new credentials")
    check_host(agent_host, "--agent-host")
    check_host(agent_bind, "--agent-bind")
    password = new_secret()
    tokens: list[dict[str, str]] = [{"id": f"s{i}", "token": new_secret()}
                                    for i in range(1, stations + 1)]
    ca_pem = layout.ca_cert.read_text() if reg.tls else None
    doc = agent_config(
        cac_id=cac_id, data_dir=agent_data_dir, timezone=timezone, mqtt_host=reg.hub_host,
        mqtt_port=reg.mqtt_port, password=password, tls=reg.tls,
        ca_file="ca.crt" if reg.tls else None, http_host=agent_bind, http_port=agent_port,
        hub_url=f"{'https' if reg.tls else 'http'}://{reg.hub_host}:{reg.http_port}",
        stations=tokens)
    doc.pop("data_dir")
    key_file = layout.root / SIGNING_KEY
    if key_file.exists():  # a hub provisioned before content was signed has none
        try:
            doc["content"]["signing_key"] = public_b64(load_private(key_file))
        except SigningError as exc:
            raise ProvisionError(str(exc)) from None
    enrol = Enrolment(hub_id=reg.hub_id, created_at=_now(), agent_host=agent_host, agent=doc,
                      ca_pem=ca_pem)

    cac_dir = layout.cac_dir(cac_id)
    make_dir(cac_dir.parent)
    make_dir(cac_dir)
    toml_path = cac_dir / "agent.toml"
    write_file(toml_path, agent_toml(enrol, data_dir=agent_data_dir))
    if ca_pem is not None:
        write_file(cac_dir / "ca.crt", ca_pem, mode=PUBLIC_MODE)
    bundle = cac_dir / f"enrol-{cac_id}.tar.gz"
    write_tarball(bundle, bundle_files(enrol))
    qr_path = cac_dir / f"enrol-{cac_id}.png"
    qr: Path | None = qr_path
    if not write_qr(qr_path, enrol):
        qr_path.unlink(missing_ok=True)  # an old code from before --replace would be wrong now
        qr = None

    reg.hashes[cac_id] = hash_password(password)
    reg.cacs[cac_id] = {"created_at": enrol.created_at, "stations": stations}
    reg.revoked.pop(cac_id, None)
    _write_broker_auth(layout, reg)
    reg.save(layout)
    return CacResult(cac_dir, toml_path, bundle, qr, stations)


WORKER_RE = re.compile(r"[a-z0-9-]{1,32}")


def add_hub_worker(root: Path, name: str, http_port: int | None = None,
                   store_url: str | None = None) -> Path:
    """One more hub worker (CONTRACT §1, §9): broker credentials of its own (user
    ``hub.NAME``, the hub's rights; a '.' no CAC id has, so it can never be a CAC's) and
    ``DIR/NAME.toml``, the hub's config with those credentials, ``worker_id = NAME`` and
    the shared subscriptions. Its own identity means its own client id and session: two
    workers never knock each other off the broker. Running it again issues new ones.
    ``store_url`` (a ``postgresql://`` url) becomes the worker's ``[store] url`` (CONTRACT §9:
    workers share one PostgreSQL store)."""
    layout = Layout(root.resolve())
    Registry.load(layout)
    if not WORKER_RE.fullmatch(name):
        raise ProvisionError(f"a worker name must match [a-z0-9-]{{1,32}}, got {name!r}")
    with _locked(layout):
        reg = Registry.load(layout)
        check_broker_reach(layout.broker_dir, _owner(reg))
        try:
            import tomllib

            doc = tomllib.loads(layout.hub_toml.read_text())
        except (OSError, ValueError) as exc:
            raise ProvisionError(f"cannot read {layout.hub_toml}: {exc}") from None
        user = f"{HUB_USER}.{name}"
        password = new_secret()
        doc["mqtt"]["username"], doc["mqtt"]["password"] = user, password
        doc["worker_id"] = name
        doc["shared_subscription"] = True
        if store_url is not None:
            if not store_url.startswith(("postgresql://", "postgres://")):
                raise ProvisionError(f"--store-url must be a postgresql:// url, got "
                                     f"{store_url.split(':', 1)[0]!r}")
            doc["store"] = {"url": store_url}
        others = [w for w in reg.workers if w != name]
        doc["http"]["port"] = http_port or reg.http_port + 1 + len(others)
        path = layout.root / f"{name}.toml"
        header = (f"{name}.toml: worker {name} of hub {reg.hub_id}, written by cac-provision "
                  f"at {_now()}.\nIt holds the worker's broker password: keep it mode 0600.")
        write_file(path, to_toml(doc, header=header))
        reg.hashes[user] = hash_password(password)
        reg.workers[name] = {"user": user, "created_at": _now()}
        _write_broker_auth(layout, reg)
        reg.save(layout)
        return path


def revoke_cac(root: Path, cac_id: str) -> Path | None:
    """Remove a CAC's credentials and ACL lines; its files move to DIR/revoked/.

    Returns where its files went (None if it had none). The broker applies the change on
    SIGHUP: the CAC is disconnected and cannot connect again.
    """
    layout = Layout(root.resolve())
    Registry.load(layout)
    with _locked(layout):
        return _revoke_cac(layout, cac_id, root)


def _revoke_cac(layout: Layout, cac_id: str, root: Path) -> Path | None:
    reg = Registry.load(layout)
    check_broker_reach(layout.broker_dir, _owner(reg))  # before anything is written
    if cac_id not in reg.cacs:
        if cac_id in reg.revoked:
            raise ProvisionError(f"CAC {cac_id} was already revoked at {reg.revoked[cac_id]}")
        raise ProvisionError(f"no CAC {cac_id} in {root}")
    del reg.cacs[cac_id]
    reg.hashes.pop(cac_id, None)
    when = _now()
    reg.revoked[cac_id] = when
    _write_broker_auth(layout, reg)
    reg.save(layout)
    src = layout.cac_dir(cac_id)
    if not src.exists():
        return None
    make_dir(layout.revoked_dir)
    dest = layout.revoked_dir / f"{cac_id}-{when.replace(':', '')}"
    shutil.move(src, dest)
    os.chmod(dest, 0o700)
    return dest
