"""`cac-hub --config HUB.toml`: the regional hub (CONTRACT §1)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from hub import __version__
from hub.config import ConfigError, HubConfig, load_hub_config

PROG = "cac-hub"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Run the hub: MQTT ingest, fleet state, dashboard and API, content publishing.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--config", required=True, metavar="HUB.toml", help="the hub's config file")
    p.add_argument("--check-config", action="store_true",
                   help="validate the config file and exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


async def serve(config: HubConfig) -> None:
    """Run the hub until SIGINT or SIGTERM, then stop it in order."""
    from hub.daemon import Hub  # imported here so that --help and --check-config stay fast

    hub = Hub(config)
    await hub.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"{PROG} {__version__}: {config.hub_id} API on "
          f"{config.http.scheme}://{config.http.host}:{hub.http_port}/api/v1, mqtt "
          f"{config.mqtt.host}:{config.mqtt.port}", flush=True)
    try:
        await hub.run(stop)
    finally:
        await hub.stop()
        logging.getLogger(PROG).info("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["add-content"]:  # cac-hub add-content --config HUB.toml DIR...
        from hub.content import add_content_main

        return add_content_main(argv[1:])
    if argv[:1] == ["export-content"]:  # cac-hub export-content --config HUB.toml --out DIR
        from hub.content import export_content_main

        return export_content_main(argv[1:])
    if argv[:1] == ["add-user"]:  # cac-hub add-user --config HUB.toml --name N --role R ...
        from hub.usercli import add_user_main

        return add_user_main(argv[1:])
    if argv[:1] == ["add-token"]:  # cac-hub add-token --config HUB.toml --name N --role R
        from hub.usercli import add_token_main

        return add_token_main(argv[1:])
    if argv[:1] == ["purge"]:  # cac-hub purge --config HUB.toml --before YYYY-MM
        from hub.impact import purge_main

        return purge_main(argv[1:])
    if argv[:1] == ["revoke-token"]:  # cac-hub revoke-token --config HUB.toml --name N
        from hub.usercli import revoke_token_main

        return revoke_token_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = load_hub_config(Path(args.config))
    except ConfigError as exc:
        print(f"{PROG}: error: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        print(f"{args.config}: ok ({config.hub_id})")
        return 0
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from common.logonce import quiet_parser_rejections

    quiet_parser_rejections()  # a malformed request: one line per address and minute
    from hub.daemon import HubError

    try:
        asyncio.run(serve(config))
    except HubError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
