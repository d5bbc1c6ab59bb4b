"""A black-holed uplink is noticed by the kernel, not by paho's keepalive (issue 15's open
finding): the real agent and a real Mosquitto in a network namespace made for the test,
every packet to and from the broker dropped by nftables, then let through again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[1] / "blackhole_site.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
                       reason="needs root, ip and nft to make a network namespace"),
]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"cacbh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_black_holed_broker_link_is_dropped_by_the_kernel_and_comes_back(
        netns: str, tmp_path: Path) -> None:
    r = subprocess.run(["ip", "netns", "exec", netns, sys.executable, str(SITE),
                        str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=240)
    log = (tmp_path / "site" / "agent.log")
    assert r.returncode == 0, r.stdout + r.stderr + (log.read_text() if log.exists() else "")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(out)
    # paho's own detector says "Keep alive timeout"; the kernel's TCP_USER_TIMEOUT ends the
    # socket with ETIMEDOUT, which paho reports as a lost connection
    assert "Keep alive" not in out["reason"], out
    assert out["reason"].startswith("connection lost"), out
    # and the agent is back as soon as the link is (its backoff is short after a good link)
    assert out["reconnect_after_unblock_s"] < 60, out
