"""The citizen's held prints on the real kiosk (issue 17): a PDF sent to the station's CUPS
queue (a private cupsd with a held cups-pdf queue) shows on the session screen as
"3 pages, 3,00 MAD: collect them at the counter"; once the counter releases it, the notice
goes. Real cac-agent and cac-kiosk processes; screenshot in test-artifacts/kiosk/prints/."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from cups_support import PrivateCups, cups_available, make_pdf
from resume_site import ResumeSite, wait

sys.path.insert(0, str(Path(__file__).parent))
from xshot import screenshot  # noqa: E402

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(not cups_available(), reason="CUPS, cups-pdf, poppler, gs "
                                 "(scripts/setup.sh installs them as root)")]


def test_held_prints_show_on_the_kiosk_until_released(
        kiosk_env: dict[str, str], artifacts: Path, tmp_path: Path) -> None:
    out = artifacts / "prints"
    out.mkdir(parents=True, exist_ok=True)
    cups = PrivateCups(("s1",))
    site = ResumeSite(tmp_path, kiosk_env, extra_toml=f"""
[printing]
cups = "{cups.host}"
spool_dir = "{cups.spool}"

[[catalogue]]
id = "print-bw"
name = {{ fr = "Impression N&B", ar = "طباعة أبيض وأسود" }}
price = 100
unit = "page"
""")
    try:
        site.start_agent()
        site.http("POST", "/sessions", {"station": "s1", "minutes": 30})
        site.start_kiosk("fr")
        wait(lambda: site.screen() == "session", "the session screen")
        job = cups.submit("s1", make_pdf(tmp_path / "three.pdf", 3))

        def notice(pages: int) -> bool:
            return any(e["event"] == "print_jobs" and e.get("pages") == pages
                       for e in site.events())
        wait(lambda: notice(3), "the kiosk's notice of 3 held pages", timeout=40)

        def redrawn() -> bool:  # the session screen rebuilt after the jobs arrived
            evs = site.events()
            at = next(e["t"] for e in evs if e["event"] == "print_jobs")
            return any(e["event"] == "screen" and e["name"] == "session" and e["t"] >= at
                       for e in evs)
        wait(redrawn, "the session screen redrawn with the notice")
        time.sleep(0.5)  # a frame or two on the X server
        screenshot(kiosk_env["DISPLAY"], out / "session-prints-fr.png")
        # the counter releases it (charged onto the session): the notice goes
        sale = site.http("POST", f"/print/jobs/{job}/release", {})
        assert sale["amount"] == 300 and sale["session"]
        wait(lambda: any(e["event"] == "print_jobs" and e.get("jobs") == 0
                         for e in site.events()), "the notice gone after release", timeout=40)
    finally:
        site.close()
        cups.stop()
