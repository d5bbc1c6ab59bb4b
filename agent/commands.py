"""Remote commands from the hub (`cac/v1/{cac_id}/cmd`), executed by the agent.

Each command carries an id; the answer on ``cmd/ack`` is ``done`` or ``failed`` with a human
message, or ``expired`` (not run) for a command received after its ``expires_at``: a lock
queued in the broker for days must not end whatever session runs when the CAC comes back.
MQTT QoS 1 may deliver a command twice (and the hub may re-send one it never saw
answered), so the answers of the last ``REMEMBERED`` commands are kept on disk
(``DATA_DIR/commands.json``): a repeated id gets the same answer again and is not executed
twice, which matters for ``restart``.

| name | station | args | effect |
| --- | --- | --- | --- |
| ``lock`` | one or all | ``reason`` (optional) | no new sessions; a running one ends |
| ``unlock`` | one or all | | |
| ``message`` | one or all | ``text``, ``seconds`` (optional) | shown on the kiosk; empty clears |
| ``set_tariff`` | | ``tariff``: the config's ``[tariff]`` table | for new sessions only |
| ``set_catalogue`` | | ``catalogue``: the config's ``[[catalogue]]`` list | for new sales |
| ``resync_content`` | | | starts a content sync now (when the content cache runs) |
| ``restart`` | | | the agent shuts down cleanly and starts again; sessions resume |

More names are registered with ``CommandRunner.register`` (an async handler returning the
``done`` message, raising ``CommandFailed`` for a ``failed`` answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from agent.errors import DomainError
from agent.service import AgentService
from agent.storage import atomic_write_bytes
from wire.messages import Command, CommandAck

log = logging.getLogger(__name__)

REMEMBERED = 200
COMMANDS_FILE = "commands.json"
ACTOR = "hub"

Handler = Callable[[Command], Awaitable[str]]


class CommandFailed(Exception):
    """A command that cannot be carried out; its message goes back to the hub."""


class CommandRunner:
    def __init__(self, service: AgentService, executor: Executor,
                 request_restart: Callable[[], None] | None = None) -> None:
        self.service = service
        self.executor = executor
        self.request_restart = request_restart
        self.path = service.state_dir / COMMANDS_FILE
        self.answers: dict[str, CommandAck] = self._load(self.path)
        self.handlers: dict[str, Handler] = {
            "lock": self._lock,
            "unlock": self._unlock,
            "message": self._message,
            "set_tariff": self._set_tariff,
            "set_catalogue": self._set_catalogue,
            "restart": self._restart,
        }
        self._lock_run = asyncio.Lock()

    @staticmethod
    def _load(path: Path) -> dict[str, CommandAck]:
        try:
            raw = json.loads(path.read_bytes())
            return {a["id"]: CommandAck(id=a["id"], status=a["status"], message=a["message"])
                    for a in raw["answers"]}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError):
            log.exception("%s is unreadable; starting with no remembered commands", path)
            return {}

    def _save(self) -> None:
        answers = list(self.answers.values())[-REMEMBERED:]
        self.answers = {a.id: a for a in answers}
        data = {"answers": [{"id": a.id, "status": a.status, "message": a.message}
                            for a in answers]}
        atomic_write_bytes(self.path, json.dumps(data).encode())

    def register(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    async def run(self, cmd: Command) -> CommandAck:
        """Execute ``cmd`` once; answers are remembered by command id."""
        async with self._lock_run:  # one at a time, in arrival order
            known = self.answers.get(cmd.id)
            if known is not None:
                log.info("command %s (%s) seen before; answering %s again", cmd.id, cmd.name,
                         known.status)
                return known
            handler = self.handlers.get(cmd.name)
            if cmd.expired(self.service.clock.now()):
                ack = CommandAck(id=cmd.id, status="expired",
                                 message=f"received after it expired at {cmd.expires_at}; "
                                         "not run")
            elif handler is None:
                ack = CommandAck(id=cmd.id, status="failed",
                                 message=f"unknown command {cmd.name!r} (this agent knows: "
                                         f"{', '.join(sorted(self.handlers))})")
            else:
                try:
                    ack = CommandAck(id=cmd.id, status="done", message=await handler(cmd))
                except CommandFailed as exc:
                    ack = CommandAck(id=cmd.id, status="failed", message=str(exc))
                except DomainError as exc:
                    ack = CommandAck(id=cmd.id, status="failed", message=exc.message)
                except Exception as exc:
                    log.exception("command %s (%s) failed", cmd.id, cmd.name)
                    ack = CommandAck(id=cmd.id, status="failed",
                                     message=f"internal error: {type(exc).__name__}")
            self.answers[cmd.id] = ack
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(self.executor, self._save)
            except OSError:
                log.exception("could not remember the answer to command %s", cmd.id)
            log.info("command %s (%s): %s %s", cmd.id, cmd.name, ack.status, ack.message)
            if cmd.name == "restart" and ack.status == "done" and known is None \
                    and self.request_restart is not None:
                self.request_restart()
            return ack

    # ---------------------------------------------------------------- built-in commands

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, fn, *args)

    def _stations(self, cmd: Command) -> list[str]:
        if cmd.station is None:
            return [st.id for st in self.service.config.stations]
        if self.service.config.station(cmd.station) is None:
            raise CommandFailed(f"no station {cmd.station!r} at this CAC")
        return [cmd.station]

    @staticmethod
    def _text_arg(cmd: Command, key: str, *, required: bool) -> str:
        value = cmd.args.get(key)
        if value is None and not required:
            return ""
        if not isinstance(value, str):
            raise CommandFailed(f"argument {key!r} must be a string")
        return value

    async def _lock(self, cmd: Command) -> str:
        reason = self._text_arg(cmd, "reason", required=False)
        targets = self._stations(cmd)
        for sid in targets:
            await self._call(self.service.lock_station, sid, ACTOR, reason)
        return f"locked {', '.join(targets)}"

    async def _unlock(self, cmd: Command) -> str:
        targets = self._stations(cmd)
        for sid in targets:
            await self._call(self.service.unlock_station, sid, ACTOR)
        return f"unlocked {', '.join(targets)}"

    async def _message(self, cmd: Command) -> str:
        text = self._text_arg(cmd, "text", required=True)
        seconds = cmd.args.get("seconds")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)):
            raise CommandFailed("argument 'seconds' must be an integer")
        if cmd.station is not None:
            self._stations(cmd)
        await self._call(self.service.send_message, cmd.station, text, seconds, ACTOR)
        return "message cleared" if not text.strip() else \
            f"message shown on {cmd.station or 'every station'}"

    async def _set_tariff(self, cmd: Command) -> str:
        if "tariff" not in cmd.args:
            raise CommandFailed("argument 'tariff' (the [tariff] table) is required")
        view = await self._call(self.service.set_tariff, cmd.args["tariff"], ACTOR)
        return f"tariff version {view['version']} in force for new sessions"

    async def _set_catalogue(self, cmd: Command) -> str:
        if "catalogue" not in cmd.args:
            raise CommandFailed("argument 'catalogue' (the [[catalogue]] list) is required")
        view = await self._call(self.service.set_catalogue, cmd.args["catalogue"], ACTOR)
        return f"catalogue version {view['version']} in force ({len(view['catalogue'])} items)"

    async def _restart(self, cmd: Command) -> str:
        if self.request_restart is None:
            raise CommandFailed("this agent cannot restart itself")
        await self._call(self.service.audit_action, ACTOR, "agent.restart", None)
        return "restarting"
