"""The agent process, assembled: the composition root behind ``cac-agent --config``.

Open the ledger (it takes the data directory's lock) and the operator accounts, build the
service from its use cases, close the sessions a crash interrupted, then serve the
application (``agent.api.make_app``: API, console, content, and the runtime's tasks).

Shutdown, on SIGTERM/SIGINT or the hub's ``restart``: aiohttp stops accepting HTTP, then the
runtime stops its tasks, checkpoints, saves the content state, publishes the retained
``offline`` and releases the service thread (``agent.runtime``); last, here, the ledger and
the accounts file are closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from aiohttp import web

from agent import __version__
from agent.api import make_app
from agent.clock import SystemClock
from agent.config import AgentConfig
from agent.ledger import Ledger, LedgerError
from agent.operators import OperatorStore
from agent.service import AgentService
from agent.storage import StorageError

log = logging.getLogger("cac-agent")

RESTART_DELAY_SECONDS = 1.0  # the restart command's answer goes out before the stop


class DaemonError(RuntimeError):
    """The agent cannot run (ledger locked or damaged, port taken); one line for the user."""


def run(config: AgentConfig) -> bool:
    """Run the agent until it is stopped; True if the hub asked for a restart."""
    try:
        ledger = Ledger(config.data_dir, config.cac_id, config.tz)
    except (LedgerError, StorageError, OSError) as exc:
        raise DaemonError(str(exc)) from None
    operators = OperatorStore(config.data_dir)
    restart = {"requested": False}

    def request_restart() -> None:
        # answer first (the ack is already queued), then stop cleanly and exec again
        restart["requested"] = True
        asyncio.get_running_loop().call_later(RESTART_DELAY_SECONDS, os.kill, os.getpid(),
                                              signal.SIGTERM)

    try:
        service = AgentService(config, ledger, operators, SystemClock())
        service.recover()
        if not operators.all():
            log.warning("no operator accounts yet: create one with 'cac-agent add-operator'")
        app = make_app(service, reporter_enabled=True, request_restart=request_restart)
        print(f"cac-agent {__version__}: {config.cac_id} listening on "
              f"http://{config.http.host}:{config.http.port}/api/v1", flush=True)
        try:
            web.run_app(app, host=config.http.host, port=config.http.port, print=None,
                        access_log=None)
        except OSError as exc:
            raise DaemonError(f"cannot listen on {config.http.host}:{config.http.port}: "
                              f"{exc.strerror}") from None
    finally:
        ledger.close()
        operators.close()
    return restart["requested"]
