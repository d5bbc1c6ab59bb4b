"""`cac-agent`: run the agent, quote a fee, manage operator accounts (CONTRACT §1)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from agent import __version__
from agent.config import AgentConfig, ConfigError, load_agent_config

PROG = "cac-agent"
SUBCOMMANDS = ("quote", "add-operator", "check-config", "import-content")


class CliError(Exception):
    """A one-line error for the user; exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error, and
    --version on every subcommand."""

    def __init__(self, prog: str, description: str) -> None:
        super().__init__(prog=prog, description=description)
        self.add_argument("--version", action="version", version=f"{PROG} {__version__}")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _config(path: str) -> AgentConfig:
    try:
        return load_agent_config(Path(path))
    except ConfigError as exc:
        raise CliError(f"bad config {path}: {exc}") from None


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(
        PROG,
        "The CAC site agent: metering, ledger, local API, reporting. "
        f"Subcommands: {', '.join(SUBCOMMANDS)} (see '{PROG} SUBCOMMAND --help').",
    )
    p.add_argument("--config", required=True, help="agent TOML file (CONTRACT §2)")
    p.add_argument("--log-level", default="INFO",
                   choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


def cmd_run(argv: Sequence[str]) -> int:
    args = _run_parser().parse_args(argv)
    config = _config(args.config)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from common.logonce import quiet_parser_rejections

    quiet_parser_rejections()  # a malformed request: one line per address and minute
    from agent.daemon import DaemonError, run  # imported here: `quote` and `--help` stay fast

    try:
        restart = run(config)
    except DaemonError as exc:
        raise CliError(str(exc)) from None
    if restart:
        logging.getLogger(PROG).warning("restarting on the hub's command")
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, sys.orig_argv)  # noqa: S606 - same PID, systemd keeps it
    return 0


def cmd_quote(argv: Sequence[str]) -> int:
    p = _Parser(f"{PROG} quote",
                "Print the fee of a session as one JSON line.")
    p.add_argument("--config", required=True)
    p.add_argument("--minutes", required=True, type=int)
    p.add_argument("--start", help="local wall-clock start YYYY-MM-DDTHH:MM (default: now)")
    p.add_argument("--category", help="concession category")
    args = p.parse_args(argv)
    config = _config(args.config)
    from agent.meter.tariff import UnknownCategory, quote

    if not 0 <= args.minutes <= 100_000:
        raise CliError("--minutes must be between 0 and 100000")
    tz = config.tz
    if args.start:
        try:
            start = datetime.strptime(args.start, "%Y-%m-%dT%H:%M").replace(tzinfo=tz)
        except ValueError:
            raise CliError(f"--start must be YYYY-MM-DDTHH:MM, got {args.start!r}") from None
    else:
        start = datetime.now(tz)
    try:
        result = quote(config.tariff, tz, args.minutes, start, args.category)
    except UnknownCategory as exc:
        raise CliError(str(exc)) from None
    print(json.dumps(result))
    return 0


def cmd_add_operator(argv: Sequence[str]) -> int:
    p = _Parser(f"{PROG} add-operator",
                "Create or replace an operator account.")
    p.add_argument("--config", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", required=True, choices=["operator", "manager"])
    p.add_argument("--password-stdin", action="store_true", required=True,
                   help="read the password from standard input (first line)")
    args = p.parse_args(argv)
    config = _config(args.config)
    from datetime import UTC

    from agent.operators import OperatorError, OperatorStore

    password = sys.stdin.readline().rstrip("\r\n")
    store = OperatorStore(config.data_dir)
    try:
        store.put(args.name, args.role, password, datetime.now(UTC))
    except OperatorError as exc:
        raise CliError(str(exc)) from None
    finally:
        store.close()
    print(f"operator {args.name} ({args.role}) saved")
    return 0


def cmd_check_config(argv: Sequence[str]) -> int:
    p = _Parser(f"{PROG} check-config",
                "Validate a config file and exit.")
    p.add_argument("--config", required=True)
    args = p.parse_args(argv)
    config = _config(args.config)
    print(f"{args.config}: ok ({config.cac_id}, {len(config.stations)} stations)")
    return 0


def cmd_import_content(argv: Sequence[str]) -> int:
    p = _Parser(f"{PROG} import-content",
                "Install content packages from a USB stick written by 'cac-hub "
                "export-content' (DIR or DIR/cac-content), with the same signature, size and "
                "checksum checks as a sync from the hub. Stop the agent first.")
    p.add_argument("--config", required=True)
    p.add_argument("dir", metavar="DIR")
    args = p.parse_args(argv)
    config = _config(args.config)
    from agent.content.sideload import SideloadError, run_import

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        status = run_import(config, Path(args.dir))
    except SideloadError as exc:
        raise CliError(str(exc)) from None
    if not status["signed"]:
        print(f"{PROG}: warning: no [content] signing_key in {args.config}: the files were "
              "checked against the stick's own checksums only", file=sys.stderr)
    for pid in status["imported"]:
        print(f"installed {pid}")
    print(f"{len(status['imported'])} packages installed, {status['installed']} in the cache")
    if status["error"]:
        print(f"{PROG}: error: {status['error']}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"quote": cmd_quote, "add-operator": cmd_add_operator,
                "check-config": cmd_check_config, "import-content": cmd_import_content}
    try:
        if argv and argv[0] in commands:
            return commands[argv[0]](argv[1:])
        return cmd_run(argv)
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
