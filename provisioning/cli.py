"""`cac-provision`: hub and CAC identities, broker credentials and ACLs (CONTRACT §1).

Not built yet: see issue 8.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from provisioning import __version__

PROG = "cac-provision"
ISSUE = 8
ID_RE = re.compile(r"[a-z0-9-]{3,64}")


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
    if not ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"must match [a-z0-9-]{{3,64}}, got {value!r}")
    return value


def _stations(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {value!r}") from None
    if not 1 <= n <= 999:
        raise argparse.ArgumentTypeError(f"must be between 1 and 999, got {n}")
    return n


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
    init.add_argument("--hub-id", type=_ident, default=None, metavar="ID", help="the hub's id")
    init.add_argument("--mqtt-port", type=_port, default=None, metavar="P",
                      help="the broker's port")
    init.add_argument("--http-port", type=_port, default=None, metavar="P",
                      help="the hub's dashboard and API port")

    add = sub.add_parser(
        "add-cac",
        help="add a CAC: broker credentials, ACL entries and DIR/cacs/ID/agent.toml",
    )
    add.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    add.add_argument("--cac-id", required=True, type=_ident, metavar="ID", help="the CAC's id")
    add.add_argument("--stations", type=_stations, default=None, metavar="N",
                     help="how many stations (each gets an id and a token)")

    rev = sub.add_parser("revoke-cac", help="remove a CAC's credentials and ACL entries")
    rev.add_argument("--dir", required=True, metavar="DIR", help="the hub's provisioning dir")
    rev.add_argument("--cac-id", required=True, type=_ident, metavar="ID", help="the CAC's id")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(f"{PROG}: not built yet (see issue {ISSUE})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
