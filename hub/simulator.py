"""`cac-simulate`: N simulated CAC agents as real MQTT clients, for load tests and the demo.

On the wire each simulated CAC behaves like ``agent.reporter``: client id ``cac-{id}``,
persistent session, a retained ``online`` birth with its boot id and version ``sim-0.1``, a
retained ``offline`` last will, health every ``--health-interval`` seconds (QoS 0), and usage
records (sessions, voucher sales, voids) with per-CAC sequence numbers from 1, published in
order from an in-memory outbox (QoS 1, at most ``MAX_IN_FLIGHT`` batches unacknowledged),
dropped only on the hub's ``ack``, and published again when the hub makes no progress for
``ack_timeout`` seconds (the wait doubling up to ``ACK_TIMEOUT_MAX``, as the reporter does).

Three modules (this one is the command line):

- ``hub.sim.cac.SimCac`` is pure: given ``now`` (seconds since the epoch) and its own
  ``random.Random``, ``step`` says what the agent publishes next and ``on_ack`` takes the
  hub's acks, through ``common.usage_window.UsageWindow``. Fees come from
  ``hub.sim.pricing`` with ``DEFAULT_TARIFF`` (CONTRACT §3).
- ``hub.sim.driver.Simulator`` drives every paho client from ONE asyncio loop through paho's
  external-loop API; blocking TCP connects run on a few executor threads, at most ``--ramp``
  new connections per second so the broker is not flooded.

``--no-will-kill K``: K CACs, chosen at start, connect with keepalive ``SILENT_KEEPALIVE``
(the protocol's maximum, ~18 h: the broker gives up on a silent client only after 1.5 times
that), and ``--kill-after`` seconds after the connection ramp they stop servicing their socket. The
TCP connection stays open and silent, so the broker never delivers their will and the hub
must mark them offline after its ``offline_after_seconds``. At exit they drain their socket
and send a DISCONNECT, so the will is not delivered then either (their retained status stays
``online``, as for a site that vanished without a last will).
"""

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
from hub.sim.cac import (
    ACK_TIMEOUT,
    ACK_TIMEOUT_MAX,
    HEALTH_INTERVAL,
    SIM_VERSION,
    USAGE_RATE,
    SimSettings,
    cac_ids,
)
from hub.sim.driver import KILL_AFTER, PROG, RAMP_PER_SECOND, SimSummary, Simulator
from wire.topics import TopicError


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (CONTRACT §1) instead of usage plus error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run N simulated CAC agents as real MQTT clients "
                "(health, usage with acks and re-sends, birth and last will).")
    p.add_argument("--version", action="version",
                   version=f"{PROG} {__version__} (agents report {SIM_VERSION})")
    p.add_argument("--host", default="127.0.0.1", help="the broker (default %(default)s)")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--count", type=int, default=10, help="simulated CACs (default 10)")
    p.add_argument("--prefix", default="sim", help="CAC ids are PREFIX-0001... (default sim)")
    p.add_argument("--regions", default="", metavar="A,B,...",
                   help="spread the CACs over these regions: ids PREFIX-REGION-0001...")
    p.add_argument("--stations", type=int, default=4, help="stations per CAC (default 4)")
    p.add_argument("--health-interval", type=float, default=HEALTH_INTERVAL, metavar="S",
                   help="seconds between health reports (default 30)")
    p.add_argument("--usage-rate", type=float, default=USAGE_RATE, metavar="R",
                   help="usage records per CAC per hour (default 4)")
    p.add_argument("--ack-timeout", type=float, default=ACK_TIMEOUT, metavar="S",
                   help="re-publish unacknowledged usage after this (default 20)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after this many seconds (default: until Ctrl-C)")
    p.add_argument("--ramp", type=float, default=RAMP_PER_SECOND, metavar="N",
                   help="new connections per second (default 200)")
    p.add_argument("--username", help="broker user; '{cac_id}' in it is replaced per CAC")
    p.add_argument("--password", help="broker password (prefer --password-file)")
    p.add_argument("--password-file", type=Path, help="file whose first line is the password")
    p.add_argument("--no-will-kill", type=int, default=0, metavar="K",
                   help="K CACs go silent after startup without a will reaching the hub")
    p.add_argument("--kill-after", type=float, default=KILL_AFTER, metavar="S",
                   help="seconds after the connection ramp before they do (default 2)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


async def _serve(sim: Simulator, duration: float | None) -> SimSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await sim.run(duration, stop)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, got {args.count}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be between 1 and 65535, got {args.port}")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.kill_after < 0:
        parser.error("--kill-after must not be negative")
    password = args.password
    if args.password_file is not None:
        if password is not None:
            parser.error("give --password or --password-file, not both")
        try:
            password = args.password_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError) as exc:
            parser.error(f"cannot read a password from {args.password_file}: {exc}")
    if password is not None and args.username is None:
        parser.error("a password needs --username")
    try:
        regions = [r.strip() for r in args.regions.split(",") if r.strip()]
        cac_ids(args.count, args.prefix, regions)
        settings = SimSettings(stations=args.stations, health_interval=args.health_interval,
                               usage_rate=args.usage_rate, ack_timeout=args.ack_timeout,
                               ack_timeout_max=max(ACK_TIMEOUT_MAX, args.ack_timeout))
        sim = Simulator(args.host, args.port, args.count, prefix=args.prefix,
                        settings=settings, username=args.username, password=password,
                        no_will_kill=args.no_will_kill, ramp=args.ramp,
                        kill_after=args.kill_after, seed=args.seed, regions=regions)
    except (ValueError, TopicError) as exc:
        parser.error(str(exc))
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ids = [a.model.cac_id for a in sim.agents]
    print(f"{PROG}: {len(ids)} CACs {ids[0]}..{ids[-1]} -> mqtt {args.host}:{args.port}",
          flush=True)
    if sim.victims:
        print(f"{PROG}: going silent without a will: {' '.join(sim.victims)}", flush=True)
    try:
        summary = asyncio.run(_serve(sim, args.duration))
    except KeyboardInterrupt:  # a second Ctrl-C during the clean stop
        return 130
    print(summary.render(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
