"""`cac-hub add-user --config HUB.toml --name NAME --role viewer|technician --password-stdin`.

Creates or replaces a dashboard account in the hub's store (salted scrypt hash); the
password is read from the first line of standard input.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hub import users
from hub.config import ConfigError, load_hub_config
from hub.store import Store, StoreError

PROG = "cac-hub add-user"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Create or replace a hub dashboard account.")
    p.add_argument("--config", required=True, metavar="HUB.toml")
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=users.ROLES)
    p.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from the first line of standard input")
    return p


def add_user_main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = load_hub_config(Path(args.config))
    except ConfigError as exc:
        print(f"{PROG}: error: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        with Store(config.db_path) as store, store.transaction():
            users.add_user(store.db, args.name, args.role, password, time.time())
    except users.UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {args.role} account saved in {config.db_path}")
    return 0
