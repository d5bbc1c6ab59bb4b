"""The station side of the agent API (CONTRACT §4), blocking: call it from a worker thread."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 4.0


class AgentUnreachable(Exception):
    """No answer from the agent (down, network, timeout, garbage)."""


class AgentRefused(Exception):
    """The agent answered with an error: ``status``, ``code``, ``message``."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class StationClient:
    def __init__(self, agent_url: str, station: str, token: str,
                 timeout: float = TIMEOUT_SECONDS) -> None:
        self.base = agent_url.rstrip("/")
        self.station = station
        self._token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._send(method, f"/api/v1/stations/{self.station}{path}", body)

    def _send(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base}{path}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http only)
        req.add_header("Authorization", f"Bearer {self._token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read())
            except ValueError:
                err = {}
            if exc.code >= 500:
                raise AgentUnreachable(f"agent error {exc.code}") from None
            retry = exc.headers.get("Retry-After")
            raise AgentRefused(exc.code, str(err.get("error", "http_error")),
                               str(err.get("message", exc.reason)),
                               int(retry) if retry and retry.isdigit() else None) from None
        except (OSError, ValueError) as exc:  # URLError, timeouts, resets, bad JSON
            raise AgentUnreachable(str(exc)) from None

    def session(self) -> dict[str, Any]:
        """``{"session": null|{...}, "locked", "lock", "message"}``; also our heartbeat."""
        out = self._call("GET", "/session")
        if not isinstance(out, dict):
            raise AgentUnreachable("unexpected answer to GET /session")
        return out

    def redeem(self, code: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", "/redeem", {"code": code})
        return out

    def profile(self, profile: dict[str, str]) -> dict[str, Any]:
        """The citizen's anonymous "help us count" answer (CONTRACT §9b), once a session."""
        out: dict[str, Any] = self._call("POST", "/session/profile", profile)
        return out

    def end(self, reason: str = "citizen") -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", "/session/end", {"reason": reason})
        return out

    def content(self) -> list[dict[str, Any]]:
        """The installed content packages; none when the agent does not serve content yet."""
        try:
            out = self._call("GET", "/content")
        except AgentRefused as exc:
            if exc.status in (404, 405):
                return []
            raise
        packages = out.get("packages") if isinstance(out, dict) else None
        return [p for p in packages or [] if isinstance(p, dict)]

    def uplink(self) -> bool | None:
        """Whether the site's uplink is up, as the agent sees it (its MQTT link to the hub, its
        internet probe); None when unknown or when the agent is too old to say."""
        try:
            out = self._call("GET", "/uplink")
        except AgentRefused as exc:
            if exc.status in (404, 405):
                return None
            raise
        up = out.get("up") if isinstance(out, dict) else None
        return up if isinstance(up, bool) else None

    def print_jobs(self) -> list[dict[str, Any]]:
        """This station's prints held at the counter, with their price; none from an agent
        without print release (404)."""
        try:
            out = self._call("GET", "/print/jobs")
        except AgentRefused as exc:
            if exc.status in (404, 405, 503):
                return []
            raise
        return [j for j in out if isinstance(j, dict)] if isinstance(out, list) else []

    def search(self, query: str, lang: str) -> list[dict[str, Any]]:
        """Full-text search of the installed content (best first); none from an agent that
        has no search yet."""
        qs = urllib.parse.urlencode({"q": query[:200], "lang": lang, "station": self.station})
        try:
            out = self._send("GET", f"/api/v1/content/search?{qs}")
        except AgentRefused as exc:
            if exc.status in (404, 405):
                return []
            raise
        return [h for h in out if isinstance(h, dict)] if isinstance(out, list) else []

    def fetch_bytes(self, url: str, limit: int = 64 * 1024 * 1024) -> bytes:
        """A content file (public, under /content/...) as bytes; AgentUnreachable if it is
        bigger than ``limit`` or cannot be fetched."""
        full = url if url.startswith("http") else self.base + url
        try:
            with urllib.request.urlopen(full, timeout=self.timeout * 4) as resp:  # noqa: S310
                data: bytes = resp.read(limit + 1)
        except (OSError, ValueError) as exc:
            raise AgentUnreachable(str(exc)) from None
        if len(data) > limit:
            raise AgentUnreachable(f"{url} is larger than {limit} bytes")
        return data

    def fetch_text(self, url: str, limit: int = 512 * 1024) -> str:
        """A text content file (public, under /content/...) as text."""
        full = url if url.startswith("http") else self.base + url
        try:
            with urllib.request.urlopen(full, timeout=self.timeout) as resp:  # noqa: S310
                text: str = resp.read(limit).decode("utf-8", errors="replace")
                return text
        except (OSError, ValueError) as exc:
            raise AgentUnreachable(str(exc)) from None
