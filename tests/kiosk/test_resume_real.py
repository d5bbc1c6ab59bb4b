"""The real kiosk through a kill -9 of the real agent (CONTRACT §7): the session it shows
comes back within a few seconds of the agent starting again, saying it was restored; a
session paused at the counter comes back paused. Screenshots of the whole X screen in
test-artifacts/kiosk/resume-real/."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from resume_site import ResumeSite, wait

sys.path.insert(0, str(Path(__file__).parent))
from xshot import screenshot  # noqa: E402

pytestmark = pytest.mark.system

OUTAGE_SECONDS = 3.0


def test_the_kiosk_shows_resumed_and_paused_sessions_after_kill_9(
        kiosk_env: dict[str, str], artifacts: Path, tmp_path: Path) -> None:
    out = artifacts / "resume-real"
    out.mkdir(parents=True, exist_ok=True)
    site = ResumeSite(tmp_path, kiosk_env)
    try:
        site.start_agent()
        s = site.http("POST", "/sessions", {"station": "s1", "minutes": 30})
        site.start_kiosk("fr")
        wait(lambda: site.seen(s["id"], 0.0), "the session on the kiosk")
        wait(lambda: site.screen() == "session", "the session screen")
        time.sleep(1.5)  # running a checkpoint or so before the cut
        site.kill_agent()
        time.sleep(OUTAGE_SECONDS)  # the outage itself
        t0 = site.start_agent()
        took = wait(lambda: site.seen(s["id"], t0), "the resumed session on the kiosk") - t0
        print(f"agent start -> resumed session on the kiosk: {took:.2f} s")
        view = site.http("GET", "/sessions")[0]
        assert (view["id"], view["state"], view["resumed"]) == (s["id"], "running", True)
        assert site.screen() == "session"
        time.sleep(0.5)  # the rebuilt screen is drawn before the shot
        screenshot(kiosk_env["DISPLAY"], out / "fr-resumed.png")

        site.http("POST", f"/sessions/{s['id']}/pause", {"reason": "Coupure de courant"})
        wait(lambda: site.screen() == "paused", "the paused screen")
        billed = site.http("GET", "/sessions")[0]["billed_seconds"]
        site.kill_agent()
        time.sleep(OUTAGE_SECONDS)
        t1 = site.start_agent()
        wait(lambda: site.seen(s["id"], t1), "the paused session on the kiosk again")
        view = site.http("GET", "/sessions")[0]
        assert (view["state"], view["billed_seconds"]) == ("paused", billed)
        assert site.screen() == "paused"
        screenshot(kiosk_env["DISPLAY"], out / "fr-paused-after-restart.png")
        site.http("POST", f"/sessions/{s['id']}/resume")
        wait(lambda: site.screen() == "session", "the session screen after the resume")
    finally:
        site.close()
