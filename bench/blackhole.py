"""How long a black-holed uplink takes to notice: the agent beside bare paho, same run.

Run as root (it makes a network namespace and drops packets in it with nftables):
    .venv/bin/python bench/blackhole.py
Prints the agent's detection time beside a bare paho client's (keepalive 30 s, publishing
every 2 s) in the same black hole, and the limit the agent is tuned for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from agent.reporter import (  # noqa: E402
    HEALTH_INTERVAL,
    TCP_KEEPCNT,
    TCP_KEEPIDLE_SECONDS,
    TCP_KEEPINTVL_SECONDS,
    TCP_USER_TIMEOUT_MS,
)


def main() -> int:
    ns = f"cacbh-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                                str(REPO / "tests" / "blackhole_site.py"), tmp, "--baseline"],
                               capture_output=True, text=True, timeout=400)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    if r.returncode != 0:
        print(r.stdout, r.stderr, file=sys.stderr)
        return 1
    out = json.loads(r.stdout.strip().splitlines()[-1])
    busy = TCP_USER_TIMEOUT_MS / 1000
    idle = TCP_KEEPIDLE_SECONDS + TCP_KEEPINTVL_SECONDS * TCP_KEEPCNT
    print(f"black hole noticed: agent {out['agent_detect_s']} s | bare paho "
          f"{out['bare_paho_detect_s']} s (same run) | agent limit {busy:.0f} s after the "
          f"first unacknowledged publish (health every {HEALTH_INTERVAL:.0f} s), {idle} s "
          f"when idle | back {out['reconnect_after_unblock_s']} s after the link")
    return 0


if __name__ == "__main__":
    sys.exit(main())
