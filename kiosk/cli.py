"""`cac-kiosk`: the touch kiosk of one station (CONTRACT §1).

``--agent``, ``--station`` and ``--token`` fall back to CAC_AGENT_URL, CAC_STATION and
CAC_TOKEN (the enrolment bundle's kiosk/ID.env file); ``--token-file`` keeps the token
out of the process list. ``--hash-pin`` reads an exit PIN on standard input and prints the
``exit_pin_hash`` line for kiosk.toml.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from typing import NoReturn

from common.ids import STATION_ID_RE
from kiosk import __version__

PROG = "cac-kiosk"


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


def _size(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{3,4})x(\d{3,4})", value)
    if not m:
        raise argparse.ArgumentTypeError(f"must be WIDTHxHEIGHT, e.g. 1280x800, got {value!r}")
    return int(m.group(1)), int(m.group(2))


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run the touch kiosk for one station.")
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    p.add_argument("--agent", type=_agent_url, metavar="URL", default=None,
                   help="the site agent's address, e.g. http://127.0.0.1:8081 "
                        "(default: $CAC_AGENT_URL)")
    p.add_argument("--station", type=_station_id, metavar="ID", default=None,
                   help="this station's id in the agent config, e.g. s1 (default: $CAC_STATION)")
    p.add_argument("--token", metavar="TOKEN", default=None,
                   help="this station's secret token from the agent config (default: $CAC_TOKEN)")
    p.add_argument("--token-file", metavar="FILE", type=Path, default=None,
                   help="read the station token from this file instead")
    p.add_argument("--lang", choices=["ar", "fr", "zgh", "en"], default=None,
                   help="first screen language (default: the one chosen on the kiosk)")
    p.add_argument("--screenshot", metavar="FILE.png", type=Path, default=None,
                   help="render the first screen, write it to this PNG file and exit 0")
    p.add_argument("--config", metavar="KIOSK.toml", type=Path, default=None,
                   help="optional kiosk settings: apps, idle timeout, exit PIN hash, state dir")
    p.add_argument("--windowed", action="store_true",
                   help="a window instead of full screen (development)")
    p.add_argument("--size", type=_size, default=(1280, 800), metavar="WxH",
                   help="window size with --windowed (default 1280x800)")
    p.add_argument("--trace", type=Path, default=None, metavar="FILE",
                   help="append screen changes and timings as JSON lines (tests, bench)")
    p.add_argument("--hash-pin", action="store_true",
                   help="read an exit PIN (4-12 digits) on stdin, print its hash and exit")
    return p


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kiosk.config import KioskConfig, ensure_private_dir, hash_pin, load_config
    from wire.config_check import ConfigError

    if args.hash_pin:
        try:
            print(f'exit_pin_hash = "{hash_pin(sys.stdin.readline().strip())}"')
        except ValueError as exc:
            return _fail(str(exc))
        return 0

    try:
        agent = args.agent or _agent_url(os.environ.get("CAC_AGENT_URL", ""))
    except argparse.ArgumentTypeError as exc:
        return _fail(f"--agent (or CAC_AGENT_URL) is required: {exc}")
    try:
        station = args.station or _station_id(os.environ.get("CAC_STATION", ""))
    except argparse.ArgumentTypeError as exc:
        return _fail(f"--station (or CAC_STATION) is required: {exc}")
    token = args.token
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            return _fail(f"--token-file: cannot read {args.token_file}: {exc.strerror}")
    token = token or os.environ.get("CAC_TOKEN", "")
    if not token:
        return _fail("--token (or --token-file, or CAC_TOKEN) is required")
    try:
        cfg = load_config(args.config) if args.config else KioskConfig()
    except ConfigError as exc:
        return _fail(f"--config {args.config}: {exc}")

    from kiosk.i18n import FontMissing, check_fonts

    try:
        check_fonts()
    except FontMissing as exc:
        return _fail(str(exc))
    if args.screenshot is not None and args.screenshot.suffix.lower() != ".png":
        return _fail("--screenshot: the file name must end in .png")
    # before Kivy is imported: `import kivy` makes KIVY_HOME without its parents
    kivy_home = Path(os.environ.get("KIVY_HOME") or cfg.state_dir / "kivy")
    for d in (cfg.state_dir, kivy_home):
        try:
            ensure_private_dir(d)
        except OSError as exc:
            return _fail(f"cannot create the kiosk's state directory {d}: "
                         f"{exc.strerror or exc} (set state_dir in --config, or "
                         f"XDG_STATE_HOME or KIVY_HOME to a writable place)")
    os.environ["KIVY_HOME"] = str(kivy_home)
    from kiosk.kivyconf import configure_kivy

    configure_kivy(windowed=args.windowed or args.screenshot is not None, size=args.size)
    from kiosk.app import KioskApp
    from kiosk.client import StationClient

    client = StationClient(agent, station, token,
                           timeout=2.0 if args.screenshot is not None else 4.0)
    app = KioskApp(client, cfg, station=station, lang=args.lang,
                   screenshot=args.screenshot.resolve() if args.screenshot else None,
                   trace_path=args.trace)
    stopped_by: list[int] = []

    def stop_on_signal(signum: int, _frame: object) -> None:
        # SDL turns SIGTERM into a window close request, which the locked-down kiosk refuses:
        # systemd's stop and run.sh's Ctrl-C would hang until SIGKILL. Stop cleanly instead
        # (on_stop closes the citizen's apps). Installed before the window exists: SDL only
        # takes a signal whose handler is still the default.
        stopped_by.append(signum)
        from kivy.clock import Clock

        Clock.schedule_once(lambda _dt: app.stop(), 0)

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGHUP, stop_on_signal)
    try:
        app.run()
    except KeyboardInterrupt:
        return 130
    if stopped_by:
        return 128 + stopped_by[0]
    if args.screenshot is not None and not args.screenshot.is_file():
        return _fail(f"--screenshot: {args.screenshot} was not written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
