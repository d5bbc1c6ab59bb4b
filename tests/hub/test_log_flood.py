"""Issue 16: aiohttp logged a full ERROR traceback for every request its parser rejected
(over-long headers or URLs), so anyone could flood the log. The real `cac-hub` now logs one
line per address and minute, and keeps answering."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from helpers import free_port

from tests.hub.test_cli import EXE, write_config


def send_raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
            if b"\r\n\r\n" in out:
                break
        return out


def test_parser_rejections_are_logged_once_per_address(tmp_path: Path) -> None:
    http = free_port()
    cfg = write_config(tmp_path, free_port(), http)  # no broker: the hub serves HTTP anyway
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(EXE), "--config", str(cfg)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if b" 401 " in send_raw(http, b"GET /api/v1/cacs HTTP/1.1\r\nHost: x\r\n\r\n"):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        for i in range(30):  # over-long header lines and URLs
            bad = (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n" if i % 2 else
                   b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"b" * 20_000 + b"\r\n\r\n")
            assert b" 400 " in send_raw(http, bad).split(b"\r\n", 1)[0], i
        answer = send_raw(http, b"GET /api/v1/cacs HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b" 401 " in answer  # still serving, still guarded
    finally:
        proc.terminate()
        proc.wait(15)
    text = log.read_text()
    assert text.count("refused a malformed HTTP request from 127.0.0.1") == 1, text[-3000:]
    assert "Traceback" not in text and "ERROR aiohttp.server" not in text, text[-3000:]
