"""`cac-hub add-user --config HUB.toml --name NAME --role viewer|technician --password-stdin`.

Creates or replaces a dashboard account in the hub's store (salted scrypt hash); the
password is read from the first line of standard input.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path
from typing import NoReturn, TypeVar

from hub import tokens, users
from hub.config import ConfigError, HubConfig, load_hub_config
from hub.store import StoreError, open_admin

PROG = "cac-hub add-user"
T = TypeVar("T")


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
        with closing(open_admin(config.db_path, config.store_url)) as store, \
                store.transaction():
            users.add_user(store.db, args.name, args.role, password, time.time())
    except users.UserError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name}: {args.role} account saved in {_where(config)}")
    return 0


def _where(config: HubConfig) -> str:
    """Where the accounts and tokens are: the SQLite file, or PostgreSQL (every worker)."""
    if config.store_url is None:
        return str(config.db_path)
    from hub.pgstore import redact  # psycopg is only loaded when it is used

    return f"the PostgreSQL store {redact(config.store_url)} (every worker sees it)"


def _token_parser(prog: str, description: str, role: bool) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description=description)
    p.add_argument("--config", required=True, metavar="HUB.toml")
    p.add_argument("--name", required=True)
    if role:
        p.add_argument("--role", required=True, choices=tokens.ROLES)
    return p


def _in_store(prog: str, config_arg: str,
              work: Callable[[sqlite3.Connection], T]) -> tuple[int, T | None, str | None]:
    """Run ``work(db)`` in one transaction of the hub's store: (exit code, result, db path);
    a bad config or name is 2, a store that cannot be written 1, each with one line."""
    try:
        config = load_hub_config(Path(config_arg))
        with closing(open_admin(config.db_path, config.store_url)) as store, \
                store.transaction():
            return 0, work(store.db), _where(config)
    except ConfigError as exc:
        print(f"{prog}: error: bad config {config_arg}: {exc}", file=sys.stderr)
        return 2, None, None
    except tokens.TokenError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2, None, None
    except StoreError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1, None, None


def add_token_main(argv: Sequence[str]) -> int:
    """``cac-hub add-token --config HUB.toml --name NAME --role viewer|technician``: prints
    the new token alone on the last line of stdout; the store keeps only its hash."""
    prog = "cac-hub add-token"
    args = _token_parser(prog, "Create (or replace) an API token for a program; the token is "
                               "printed once, the hub keeps only its hash.", True).parse_args(argv)
    rc, token, db_path = _in_store(prog, args.config, lambda db: tokens.add_token(
        db, args.name, args.role, time.time()))
    if rc:
        return rc
    print(f"{args.name}: {args.role} API token saved (hash only) in {db_path}; "
          "send it as 'Authorization: Bearer <token>':")
    print(token)
    return 0


def revoke_token_main(argv: Sequence[str]) -> int:
    """``cac-hub revoke-token --config HUB.toml --name NAME``: the token stops working."""
    prog = "cac-hub revoke-token"
    args = _token_parser(prog, "Revoke an API token made by add-token.", False).parse_args(argv)
    rc, gone, _ = _in_store(prog, args.config,
                            lambda db: tokens.revoke_token(db, args.name))
    if rc:
        return rc
    if not gone:
        print(f"{prog}: error: no API token named {args.name!r}", file=sys.stderr)
        return 2
    print(f"{args.name}: API token revoked")
    return 0
