"""`cac-provision`: hub and CAC identities, broker credentials and ACLs (CONTRACT §1).

``init-hub`` writes a ready hub into DIR; ``add-cac`` gives a CAC its credentials, ACL lines,
``DIR/cacs/ID/agent.toml`` and an enrolment bundle; ``revoke-cac`` takes them away (the
running broker applies both on SIGHUP). Output names files, never a secret.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from common.ids import CAC_ID_PATTERN, CAC_ID_RE
from provisioning import __version__
from provisioning.bundle import BundleError
from provisioning.configs import AGENT_DATA_DIR, AGENT_HTTP_PORT, TIMEZONE
from provisioning.ops import (
    DEFAULT_HTTP_PORT,
    DEFAULT_HUB_ID,
    DEFAULT_STATIONS,
    add_cac,
    add_hub_worker,
    init_hub,
    revoke_cac,
)
from provisioning.registry import Layout, ProvisionError
from provisioning.tls import TlsError

PROG = "cac-provision"
USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {port}")
    return port


def _ident(value: str) -> str:
    if not CAC_ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"must match {CAC_ID_PATTERN}, got {value!r}")
    return value


def _stations(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if not 1 <= n <= 999:
        raise argparse.ArgumentTypeError(f"must be between 1 and 999, got {n}")
    return n


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"unknown IANA time zone {value!r}") from None
    return value


def _user(value: str) -> str:
    if not USER_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"not a system user name: {value!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Provision a hub and its CACs: broker credentials, ACLs and config files.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init-hub",
        help="write a ready hub: DIR/mosquitto.conf, password and ACL files, DIR/hub.toml",
    )
    init.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    init.add_argument("--hub-id", type=_ident, default=DEFAULT_HUB_ID, metavar="ID",
                      help=f"the hub's id (default {DEFAULT_HUB_ID})")
    init.add_argument("--mqtt-port", type=_port, default=None, metavar="P",
                      help="the broker's port (default 1883, or 8883 with --tls)")
    init.add_argument("--http-port", type=_port, default=DEFAULT_HTTP_PORT, metavar="P",
                      help=f"the hub's dashboard and API port (default {DEFAULT_HTTP_PORT})")
    init.add_argument("--hub-host", default="127.0.0.1", metavar="HOST",
                      help="the name or address agents use to reach the hub (default 127.0.0.1)")
    init.add_argument("--bind", default=None, metavar="ADDR",
                      help="the address the broker and the hub's HTTP server listen on "
                           "(default: every interface)")
    init.add_argument("--tls", action="store_true",
                      help="TLS on the broker's listener with a new CA; agents verify it")
    init.add_argument("--broker-user", type=_user, default=None, metavar="USER",
                      help="the user Mosquitto runs as (default: Mosquitto's own, 'mosquitto'"
                           " when started as root); its files are given to that user")
    init.add_argument("--data-dir", default=None, metavar="PATH",
                      help="the hub's data_dir (default DIR/hub-data)")

    add = sub.add_parser(
        "add-cac",
        help="add a CAC: broker credentials, ACL entries and DIR/cacs/ID/agent.toml",
    )
    add.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    add.add_argument("--cac-id", required=True, type=_ident, metavar="ID", help="the CAC's id")
    add.add_argument("--stations", type=_stations, default=DEFAULT_STATIONS, metavar="N",
                     help=f"how many stations, s1..sN, each with a token "
                          f"(default {DEFAULT_STATIONS})")
    add.add_argument("--timezone", type=_timezone, default=TIMEZONE, metavar="ZONE",
                     help=f"the CAC's IANA time zone (default {TIMEZONE})")
    add.add_argument("--agent-host", default="127.0.0.1", metavar="HOST",
                     help="how the kiosks reach the agent, for their env files "
                          "(default 127.0.0.1: kiosk and agent on one PC)")
    add.add_argument("--agent-port", type=_port, default=AGENT_HTTP_PORT, metavar="P",
                     help=f"the agent's HTTP port (default {AGENT_HTTP_PORT})")
    add.add_argument("--agent-bind", default="0.0.0.0", metavar="ADDR",  # noqa: S104
                     help="the address the agent's HTTP server listens on (default 0.0.0.0)")
    add.add_argument("--agent-data-dir", default=AGENT_DATA_DIR, metavar="PATH",
                     help=f"data_dir in DIR/cacs/ID/agent.toml (default {AGENT_DATA_DIR}; "
                          "the bundle always has the default)")
    add.add_argument("--replace", action="store_true",
                     help="issue new credentials and tokens to a CAC that already exists")

    rev = sub.add_parser("revoke-cac", help="remove a CAC's credentials and ACL entries")
    rev.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    rev.add_argument("--cac-id", required=True, type=_ident, metavar="ID", help="the CAC's id")
    wk = sub.add_parser("add-hub-worker", help="add one more hub worker with its own "
                                               "broker identity")
    wk.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    wk.add_argument("--name", required=True, metavar="NAME", help="the worker's name")
    wk.add_argument("--http-port", type=_port, default=None, metavar="P",
                    help="the worker's dashboard/API port (default: the hub's + 1 + the "
                         "number of workers, so workers on one machine do not collide)")
    wk.add_argument("--store-url", default=None, metavar="URL",
                    help="the PostgreSQL store the workers share: postgresql://user:password@"
                         "host:port/dbname (written as [store] url; default: SQLite in "
                         "data_dir)")
    return p


def _reload_hint(root: Path) -> str:
    return (f"a running broker applies this on SIGHUP: kill -HUP <mosquitto pid> "
            f"(mosquitto -c {Layout(root.resolve()).mosquitto_conf})")


def _run(args: argparse.Namespace) -> None:
    root = Path(args.dir)
    if args.command == "init-hub":
        reg = init_hub(root, hub_id=args.hub_id, mqtt_port=args.mqtt_port,
                       http_port=args.http_port, hub_host=args.hub_host, bind=args.bind,
                       tls=args.tls, broker_user=args.broker_user,
                       data_dir=Path(args.data_dir) if args.data_dir else None)
        layout = Layout(root.resolve())
        print(f"hub {reg.hub_id}: wrote {layout.mosquitto_conf}, {layout.hub_toml} (0600), "
              f"{layout.password_file} and {layout.acl_file} (0600)")
        if reg.tls:
            print(f"TLS on port {reg.mqtt_port}: CA {layout.ca_cert}, "
                  f"server certificate for {reg.hub_host}")
        print(f"run: mosquitto -c {layout.mosquitto_conf}")
        print(f"run: cac-hub --config {layout.hub_toml}")
    elif args.command == "add-cac":
        res = add_cac(root, args.cac_id, stations=args.stations, timezone=args.timezone,
                      agent_host=args.agent_host, agent_port=args.agent_port,
                      agent_data_dir=args.agent_data_dir, agent_bind=args.agent_bind,
                      replace=args.replace)
        print(f"CAC {args.cac_id}: {res.stations} station(s); wrote {res.agent_toml} (0600)")
        print(f"enrolment bundle: {res.bundle} (0600: copy it onto the CAC's box)")
        if res.qr is not None:
            print(f"enrolment QR code: {res.qr} (0600: it holds the same secrets)")
        else:
            print("no QR code: too many stations to fit in one; use the bundle")
        print(_reload_hint(root))
    elif args.command == "add-hub-worker":
        path = add_hub_worker(root, args.name, http_port=args.http_port,
                              store_url=args.store_url)
        print(f"hub worker {args.name}: wrote {path} (0600); run: cac-hub --config {path}")
        print(_reload_hint(root))
    else:
        moved = revoke_cac(root, args.cac_id)
        print(f"CAC {args.cac_id}: credentials and ACL entries removed")
        if moved is not None:
            print(f"its files moved to {moved}")
        print(_reload_hint(root))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _run(args)
    except (ProvisionError, TlsError, BundleError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{PROG}: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
