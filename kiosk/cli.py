"""`cac-kiosk`: the touch kiosk of one station (CONTRACT §1). Not built yet: see issue 4."""

from __future__ import annotations

import argparse
import re
import sys
from typing import NoReturn

from kiosk import __version__

PROG = "cac-kiosk"
ISSUE = 4
STATION_ID_RE = re.compile(r"[a-z0-9-]{1,32}")


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _agent_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _station_id(value: str) -> str:
    if not STATION_ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"must match [a-z0-9-]{{1,32}}, got {value!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run the touch kiosk for one station.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--agent", required=True, type=_agent_url, metavar="URL",
                   help="the site agent's address, e.g. http://127.0.0.1:8081")
    p.add_argument("--station", required=True, type=_station_id, metavar="ID",
                   help="this station's id in the agent config, e.g. s1")
    p.add_argument("--token", required=True, metavar="TOKEN",
                   help="this station's secret token from the agent config")
    p.add_argument("--lang", choices=["ar", "fr", "zgh", "en"], default=None,
                   help="first screen language (default: the one chosen on the kiosk)")
    p.add_argument("--screenshot", metavar="FILE.png", default=None,
                   help="render the first screen, write it to this PNG file and exit 0")
    return p


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    print(f"{PROG}: not built yet (see issue {ISSUE})", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
