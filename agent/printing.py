"""Print release (issue 17, CONTRACT §8): each station prints to its own CUPS queue (named
like the station, ``job-hold-until-default=indefinite``), so every job waits held until the
counter releases it (charged) or cancels it (free).

CUPS is driven with its command-line tools (``lpstat``, ``lp -H resume``, ``cancel``) on the
``[printing] cups`` server. CUPS reports no page count for a held job, so the pages are
read from the spooled file (``pdfinfo`` on ``spool_dir/dNNNNN-001``, which needs read access
to CUPS's spool: root or the ``lp`` group), and colour from its content (Ghostscript's
``inkcov`` device: any page with cyan, magenta or yellow ink that is not grey is colour).
A CUPS that does not answer is ``PrintUnavailable``: the print page says so, and every money
path of the agent keeps working without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from wire.config_check import ConfigError
from wire.config_check import no_unknown as _no_unknown
from wire.config_check import string as _str
from wire.config_check import table as _table

TOOL_TIMEOUT = 10.0  # seconds per CUPS or Ghostscript call
JOB_RE = re.compile(r"^(?P<queue>[a-z0-9-]{1,32})-(?P<id>[0-9]{1,9})\s+(?P<user>\S+)\s+"
                    r"(?P<size>[0-9]+)\s+(?P<date>.+?)\s*$")
HOST_RE = re.compile(r"[A-Za-z0-9.:\[\]-]{1,255}|/[A-Za-z0-9._/-]{1,254}")  # or its socket


@dataclass(frozen=True)
class PrintingConfig:
    cups: str | None = None  # host:port or socket path of CUPS; None: no print release
    bw_item: str = "print-bw"
    color_item: str = "print-color"
    spool_dir: Path = Path("/var/spool/cups")


def parse_printing(raw: object) -> PrintingConfig:
    t = _table(raw, "printing")
    _no_unknown(t, {"cups", "bw_item", "color_item", "spool_dir"}, "printing")
    cups = None
    if "cups" in t:
        cups = _str(t["cups"], "printing.cups")
        if not HOST_RE.fullmatch(cups):
            raise ConfigError("printing.cups", "must be HOST:PORT or the path of CUPS's "
                              f"socket (/run/cups/cups.sock), got {cups!r}")
    out = PrintingConfig(cups=cups,
                         bw_item=_str(t.get("bw_item", "print-bw"), "printing.bw_item"),
                         color_item=_str(t.get("color_item", "print-color"),
                                         "printing.color_item"),
                         spool_dir=Path(_str(t.get("spool_dir", "/var/spool/cups"),
                                             "printing.spool_dir")))
    return out


class PrintUnavailable(RuntimeError):
    """CUPS (or a tool it needs) does not answer; the message says what to check."""


@dataclass(frozen=True)
class HeldJob:
    id: str
    station: str
    pages: int
    color: bool
    submitted_at: str

    def view(self) -> dict[str, Any]:
        return {"id": self.id, "station": self.station, "pages": self.pages,
                "color": self.color, "submitted_at": self.submitted_at}


class Cups:
    """The held jobs of the stations' queues on one CUPS server."""

    def __init__(self, config: PrintingConfig) -> None:
        self.config = config
        self._facts: dict[str, tuple[int, bool]] = {}  # job id -> (pages, colour), read once

    def _run(self, *args: str) -> str:
        if self.config.cups is None:
            raise PrintUnavailable("printing is not configured ([printing] cups)")
        tool = shutil.which(args[0])
        if tool is None:
            raise PrintUnavailable(f"{args[0]} is not installed (Debian package cups-client)")
        try:
            done = subprocess.run([tool, "-h", self.config.cups, *args[1:]],  # noqa: S603
                                  capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise PrintUnavailable(f"CUPS at {self.config.cups} does not answer") from None
        if done.returncode != 0:
            raise PrintUnavailable(f"CUPS at {self.config.cups}: "
                                   f"{(done.stderr or done.stdout).strip()[:300]}")
        return done.stdout

    def held(self, stations: set[str]) -> list[HeldJob]:
        """Held jobs of the stations' queues, oldest first."""
        out = self._run("lpstat", "-l", "-o")
        jobs: list[HeldJob] = []
        current: dict[str, str] | None = None
        blocks: list[tuple[dict[str, str], list[str]]] = []
        for line in out.splitlines():
            m = JOB_RE.match(line)
            if m:
                current = m.groupdict()
                blocks.append((current, []))
            elif current is not None and line.strip():
                blocks[-1][1].append(line.strip())
        for head, details in blocks:
            if head["queue"] not in stations:
                continue
            if not any("job-hold-until-specified" in d for d in details):
                continue  # released (printing) or stopped for another reason
            pages, color = self._job_facts(head["id"])
            jobs.append(HeldJob(head["id"], head["queue"], pages, color,
                                _when(head["date"])))
        return jobs

    def _job_facts(self, job_id: str) -> tuple[int, bool]:
        facts = self._facts.get(job_id)
        if facts is None:
            spooled = self.config.spool_dir / f"d{int(job_id):05d}-001"
            facts = (_pages(spooled), _is_color(spooled))
            self._facts[job_id] = facts
        return facts

    def release(self, job_id: str) -> None:
        self._run("lp", "-i", job_id, "-H", "resume")
        self._facts.pop(job_id, None)

    def cancel(self, job_id: str) -> None:
        self._run("cancel", job_id)
        self._facts.pop(job_id, None)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PrintUnavailable(f"{name} is not installed (poppler-utils, ghostscript)")
    return path


def _pages(path: Path) -> int:
    """The page count of a spooled PDF (``pdfinfo``)."""
    try:
        done = subprocess.run([_tool("pdfinfo"), str(path)], capture_output=True,  # noqa: S603
                              text=True, timeout=TOOL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise PrintUnavailable(f"pdfinfo took too long on {path}") from None
    m = re.search(r"^Pages:\s+([0-9]+)", done.stdout, re.MULTILINE)
    if done.returncode != 0 or m is None:
        raise PrintUnavailable(f"cannot count the pages of {path} (not a PDF, or no read "
                               f"access to the CUPS spool): {done.stderr.strip()[:200]}")
    return int(m.group(1))


def _is_color(path: Path) -> bool:
    """True if any page uses colour ink (Ghostscript ``inkcov``: C, M, Y not all equal)."""
    try:
        done = subprocess.run([_tool("gs"), "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE",  # noqa: S603
                               "-o", "-", "-sDEVICE=inkcov", str(path)],
                              capture_output=True, text=True, timeout=TOOL_TIMEOUT * 3,
                              check=False)
    except subprocess.TimeoutExpired:
        raise PrintUnavailable(f"Ghostscript took too long on {path}") from None
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            try:
                c, m, y = (float(x) for x in parts[:3])
            except ValueError:
                continue
            if max(c, m, y) - min(c, m, y) > 0.001:
                return True
    return False


def _when(text: str) -> str:
    """lpstat's local date ("Thu Dec  3 07:47:27 2026") as ISO 8601 with the offset."""
    try:
        return datetime.strptime(" ".join(text.split()[:5]),  # noqa: DTZ007 - local time
                                 "%a %b %d %H:%M:%S %Y").astimezone().isoformat()
    except ValueError:
        return text
