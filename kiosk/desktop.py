"""The citizen's computer: the applications of a session (browser, office suite, files) run
as a separate unprivileged user (``cac-citizen``) in a home that is recreated for every
session; at the end every process of that user is killed and the home is removed.

As root (tests, the demo) the kiosk switches user itself (``setpriv``) and, when
``policy_dir`` is set, gives Chromium its managed policies in a private mount namespace
(so the policies of this machine's own Chromium are not touched). As the image's
``cac-kiosk`` user it goes through ``sudo`` rules that allow exactly this (images/).
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiosk.apps import Launcher
from kiosk.config import AppSpec
from wire.config_check import ConfigError, check_int, no_unknown, string, table

log = logging.getLogger(__name__)

CITIZEN_USER = "cac-citizen"
CITIZEN_HOME = Path("/var/lib/cac-citizen/home")
DATA = Path(__file__).with_name("citizen")
KILL_DEADLINE_SECONDS = 5.0
BROWSER_FLAGS = ("--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-default-browser-check",
                 "--password-store=basic", "--disable-features=Translate")
SESSION_DIRS = ("Downloads", "Documents")
UPLINK_TIMEOUT_SECONDS = 2.0
MAX_PAGE_BYTES = 1024 * 1024
PATH = "/usr/local/bin:/usr/bin:/bin"
SHARED_TMP = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108 (cleaned, not used)


@dataclass(frozen=True)
class DesktopConfig:
    """``[desktop]`` of kiosk.toml: who runs the apps, where their home is, the bar."""

    user: str = CITIZEN_USER
    home: Path = CITIZEN_HOME
    bar_height: int = 88
    policy_dir: Path | None = None   # root only: bind-mounted over /etc/chromium for Chromium
    default_apps: bool = True        # browser, writer, calc, files when [[apps]] names none
    sudo: tuple[str, ...] = ("sudo", "-n")   # when the kiosk is not root
    uplink_probe: str = ""           # "host:port" reachable only with internet ("": unknown)

    @property
    def start_page(self) -> Path:
        return self.home / "start.html"


def parse_desktop(raw: object) -> DesktopConfig:
    t = table(raw, "desktop")
    no_unknown(t, {"user", "home", "bar_height", "policy_dir", "default_apps", "uplink_probe"},
               "desktop")
    kw: dict[str, Any] = {}
    if "user" in t:
        kw["user"] = string(t["user"], "desktop.user")
        if kw["user"] in ("root", "") or not kw["user"].isascii():
            raise ConfigError("desktop.user", "must be a dedicated unprivileged user")
    if "home" in t:
        home = Path(string(t["home"], "desktop.home"))
        if not home.is_absolute() or len(home.parts) < 4:
            raise ConfigError("desktop.home", "must be an absolute folder of its own "
                                              "(e.g. /var/lib/cac-citizen/home)")
        kw["home"] = home
    if "bar_height" in t:
        kw["bar_height"] = check_int("desktop.bar_height", t["bar_height"], 48, 200)
    if "policy_dir" in t:
        kw["policy_dir"] = Path(string(t["policy_dir"], "desktop.policy_dir"))
    if "uplink_probe" in t:
        probe = string(t["uplink_probe"], "desktop.uplink_probe")
        host, _, port = probe.rpartition(":")
        if probe and (not host or not port.isdigit()):
            raise ConfigError("desktop.uplink_probe", "must be HOST:PORT")
        kw["uplink_probe"] = probe
    if "default_apps" in t:
        if not isinstance(t["default_apps"], bool):
            raise ConfigError("desktop.default_apps", "must be true or false")
        kw["default_apps"] = t["default_apps"]
    return DesktopConfig(**kw)


def default_apps(d: DesktopConfig) -> tuple[AppSpec, ...]:
    """The session's applications: Chromium (opens the start page), Writer, Calc, and the
    session folder (PDFs open in Chromium's PDF viewer)."""
    profile = d.home / ".config" / "chromium"
    browser = ("chromium", *BROWSER_FLAGS, f"--user-data-dir={profile}")
    office = ("libreoffice", "--nologo", "--norestore", "--nolockcheck")
    return (
        AppSpec("browser", "Web", (*browser, "--start-maximized", d.start_page.as_uri())),
        AppSpec("writer", "Letter / CV (Writer)", (*office, "--writer")),
        AppSpec("calc", "Spreadsheet (Calc)", (*office, "--calc")),
        AppSpec("files", "My files / PDF", (*browser, f"--app={d.home.as_uri()}/")),
    )


# ---------------------------------------------------------------- running as the citizen


def is_root() -> bool:
    return os.geteuid() == 0


def citizen_env(d: DesktopConfig) -> list[str]:
    """The whole environment of a citizen's app: nothing of the kiosk's (no token)."""
    env = [f"HOME={d.home}", f"USER={d.user}", f"LOGNAME={d.user}", f"PATH={PATH}",
           f"DISPLAY={os.environ.get('DISPLAY', ':0')}", "LANG=" + os.environ.get(
               "LANG", "C.UTF-8"), f"TMPDIR={d.home / '.tmp'}", "SAL_USE_VCLPLUGIN=gen",
           f"XDG_CONFIG_HOME={d.home / '.config'}", f"XDG_CACHE_HOME={d.home / '.cache'}",
           f"XDG_DATA_HOME={d.home / '.local/share'}", f"XDG_DOWNLOAD_DIR={d.home}/Downloads"]
    return env


def as_citizen(d: DesktopConfig, argv: Iterable[str]) -> list[str]:
    """``argv`` run as the citizen user with a clean environment."""
    cmd = ["env", "-i", *citizen_env(d), *argv]
    if not is_root():
        return [*d.sudo, "-u", d.user, "--", *cmd]
    switch = ["setpriv", f"--reuid={d.user}", f"--regid={d.user}", "--init-groups",
              "--inh-caps=-all", "--"]
    if d.policy_dir is not None:
        # a private mount namespace in which /etc/chromium holds the station's policies
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
                'mount --bind "$0" /etc/chromium && exec "$@"', str(d.policy_dir),
                *switch, *cmd]
    return [*switch, *cmd]


def uid_of(user: str) -> int:
    return pwd.getpwnam(user).pw_uid


def pids_of(uid: int) -> list[int]:
    """Every process whose real or effective uid is ``uid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:"):
                real, eff = (int(x) for x in line.split()[1:3])
                if uid in (real, eff) and int(entry.name) != os.getpid():
                    found.append(int(entry.name))
                break
    return found


def live_pids(uid: int) -> list[int]:
    """The processes of ``uid`` that still run (zombies hold nothing and are left out)."""
    return [p for p in pids_of(uid) if not _zombie(p)]


def kill_user(uid: int, deadline: float = KILL_DEADLINE_SECONDS) -> list[int]:
    """SIGKILL every process of ``uid`` until none is left; returns what still lives."""
    if uid == 0 or uid == os.getuid():
        raise ValueError("refusing to kill the processes of root or of the kiosk itself")
    end = time.monotonic() + deadline
    while True:
        left = live_pids(uid)
        if not left or time.monotonic() > end:
            return left
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except (OSError, IndexError):
        return True


def reset_home(d: DesktopConfig, start_page: str | None = None) -> None:
    """Kill every process of the citizen, remove the home and make a new empty one
    (root only: the kiosk user calls it through sudo, ``python -m kiosk.desktop reset``)."""
    pw = pwd.getpwnam(d.user)
    left = kill_user(pw.pw_uid)
    if left:
        log.error("processes of %s survived SIGKILL: %s", d.user, left)
    _remove_owned(pw.pw_uid, SHARED_TMP)
    if d.home.is_symlink():
        d.home.unlink()
    elif d.home.exists():
        shutil.rmtree(d.home)
    d.home.parent.mkdir(parents=True, exist_ok=True)
    d.home.mkdir(mode=0o700)
    for sub in (*SESSION_DIRS, ".config", ".config/libreoffice/4/user", ".tmp"):
        (d.home / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "libreoffice-lockdown.xcu",
                d.home / ".config/libreoffice/4/user/registrymodifications.xcu")
    if start_page is not None:
        d.start_page.write_text(start_page, encoding="utf-8")
    for root, dirs, files in os.walk(d.home):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    os.chown(d.home, pw.pw_uid, pw.pw_gid)


def _remove_owned(uid: int, dirs: Iterable[Path]) -> None:
    """What the citizen left in the shared temporary folders (/tmp, /dev/shm...)."""
    for top in dirs:
        with contextlib.suppress(OSError):
            for entry in top.iterdir():
                try:
                    if entry.lstat().st_uid != uid:
                        continue
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                except OSError as exc:
                    log.warning("could not remove %s: %s", entry, exc)


def start_page(agent_url: str, uplink: bool | None, content: list[dict[str, Any]]) -> str:
    """The browser's local start page: the offline library's packages, and whether the
    internet is up (``uplink``: None when unknown)."""
    if uplink is False:
        net = ("<p class=down>Internet indisponible pour le moment · الإنترنت غير متاح حاليا · "
               "The internet is down for now. La bibliothèque hors ligne reste ouverte.</p>")
    elif uplink is True:
        net = "<p>Internet disponible · الإنترنت متاح · The internet is up.</p>"
    else:
        net = ""
    items = []
    for pkg in content:
        title = html.escape(str(pkg.get("title", pkg.get("id", "?"))))
        files = "".join(
            f'<li><a href="{html.escape(agent_url + str(f.get("url", "")), quote=True)}">'
            f'{html.escape(str(f.get("title") or f.get("path", "?")))}</a></li>'
            for f in pkg.get("files", []) if str(f.get("url", "")).startswith("/"))
        items.append(f"<h2>{title}</h2><ul>{files}</ul>")
    library = "".join(items) or "<p>Bibliothèque hors ligne : demandez à l'opérateur.</p>"
    return ("<!doctype html><html lang=fr><meta charset=utf-8><title>CAC</title>"
            "<style>body{font:20px sans-serif;margin:2em}.down{color:#a00;font-weight:bold}"
            "a{font-size:22px}</style><h1>Centre d'accès communautaire</h1>"
            f"{net}<h2>Bibliothèque hors ligne · المكتبة</h2>{library}</html>")


def uplink_up(probe: str, timeout: float = UPLINK_TIMEOUT_SECONDS) -> bool | None:
    """Whether a TCP connection to ``probe`` (HOST:PORT beyond the site) opens; None when
    no probe is configured."""
    if not probe:
        return None
    host, _, port = probe.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_x_access(d: DesktopConfig) -> None:
    """Let the citizen user's apps open windows on the kiosk's X display."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["xhost", f"+SI:localuser:{d.user}"], check=False,  # noqa: S603,S607
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)


class CitizenLauncher(Launcher):
    """The kiosk's Launcher, with every app run as the citizen user and the session's end
    killing everything of that user and recreating the home."""

    def __init__(self, apps: tuple[AppSpec, ...], desktop: DesktopConfig) -> None:
        super().__init__(apps)
        self.desktop = desktop
        self.page = start_page("", None, [])
        self.client: Any = None  # the kiosk's StationClient, for the start page's library
        self.page_content: list[dict[str, Any]] = []
        ensure_x_access(desktop)

    def launch(self, app_id: str, **fields: str) -> None:
        spec = self.apps[app_id]
        proc = self.running.get(app_id)
        if proc is not None and proc.poll() is None:
            return
        argv = [a.format(**fields) if fields else a for a in spec.command]
        if self.desktop.start_page.as_uri() in argv:
            self.refresh_start_page()
        self.launch_command(app_id, as_citizen(self.desktop, argv))
        log.info("started %s as %s (pid %d)", app_id, self.desktop.user,
                 self.running[app_id].pid)

    def wipe(self) -> None:
        super().wipe()
        self.reset()

    def reset(self) -> None:
        """Kill every process of the citizen user, recreate the home (blocking)."""
        self.page = self.make_start_page()
        if is_root():
            reset_home(self.desktop, self.page)
            return
        subprocess.run([*self.desktop.sudo, sys.executable, "-m", "kiosk.desktop",  # noqa: S603
                        "reset"], check=True, timeout=60, input=self.page.encode())

    def make_start_page(self) -> str:
        """The start page for the next session: the library's packages, the uplink."""
        content: list[dict[str, Any]] = []
        base = ""
        if self.client is not None:
            base = str(self.client.base)
            try:
                content = list(self.client.content())
            except Exception as exc:  # noqa: BLE001 - the page is made without the library
                log.warning("start page without the library: %s", exc)
        self.page_content = content
        return start_page(base, self.uplink(), content)

    def uplink(self) -> bool | None:
        """The uplink: the kiosk's own probe when ``[desktop] uplink_probe`` is set, else what
        the agent says (its hub link and internet probe); None when unknown."""
        if self.desktop.uplink_probe:
            return uplink_up(self.desktop.uplink_probe)
        if self.client is None:
            return None
        try:
            up: bool | None = self.client.uplink()
        except Exception as exc:  # noqa: BLE001 - unknown: the page says nothing of the net
            log.warning("uplink state unknown: %s", exc)
            return None
        return up

    def refresh_start_page(self) -> None:
        """Rewrite the start page with the uplink as it is now (the browser is opening: the
        page made at the last session's end may be hours old)."""
        page = start_page("" if self.client is None else str(self.client.base), self.uplink(),
                          self.page_content)
        if page == self.page:
            return
        self.page = page
        target = self.desktop.start_page
        try:
            if is_root():
                target.write_text(page, encoding="utf-8")
                pw = pwd.getpwnam(self.desktop.user)
                os.chown(target, pw.pw_uid, pw.pw_gid)
            else:  # the home belongs to the citizen: write it as the citizen
                subprocess.run(as_citizen(self.desktop, [  # noqa: S603
                    "sh", "-c", 'cat > "$0"', str(target)]), input=page.encode(), check=True,
                    timeout=10, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, KeyError, subprocess.SubprocessError) as exc:
            log.warning("start page not refreshed: %s", exc)

    def home_files(self) -> list[Path]:
        """The citizen's own files (Downloads, Documents), for "your files"."""
        out: list[Path] = []
        for sub in SESSION_DIRS:
            with contextlib.suppress(OSError):
                out.extend(sorted(p for p in (self.desktop.home / sub).rglob("*")
                                  if p.is_file()))
        return out


    def open_document(self, url: str, media_type: str) -> bool:
        """Open a library file in the office suite (the SME toolkit's templates: HTML in
        Writer, CSV in Calc), straight from the agent's URL; the citizen saves a copy into
        Documents. False when the file is not an office document."""
        module = office_module(url, media_type)
        if module is None:
            return False
        key = f"doc-{len(self.running)}"
        self.launch_command(key, as_citizen(self.desktop, [
            "libreoffice", "--nologo", "--norestore", "--nolockcheck", f"--{module}", url]))
        return True

    def copy_to(self, target: Path) -> int:
        """Copy the citizen's files onto ``target`` (a USB stick); the number copied."""
        if is_root():
            from kiosk.usb import copy_files

            return len(copy_files(self.home_files(), self.desktop.home, target))
        r = subprocess.run([*self.desktop.sudo, sys.executable, "-m",  # noqa: S603
                            "kiosk.desktop", "copy-to", str(target)], check=True, timeout=300,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        return int(r.stdout.strip() or 0)


def office_module(url: str, media_type: str) -> str | None:
    """"calc" or "writer" for a file the office suite edits, else None."""
    media = media_type.split(";")[0].strip().lower()
    path = url.split("?")[0].lower()
    if media in ("text/csv", "application/vnd.oasis.opendocument.spreadsheet") or \
            path.endswith((".csv", ".ods", ".xlsx")):
        return "calc"
    if media in ("application/vnd.oasis.opendocument.text",) or path.endswith(
            (".odt", ".docx", ".doc", ".rtf")) or ("/sme-toolkit" in path
                                                   and path.endswith(".html")):
        return "writer"
    return None


def make_launcher(cfg: Any) -> Launcher:
    """The kiosk's launcher: a CitizenLauncher when the config has a [desktop]."""
    desktop: DesktopConfig | None = getattr(cfg, "desktop", None)
    if desktop is None:
        return Launcher(cfg.apps)
    apps = cfg.apps or (default_apps(desktop) if desktop.default_apps else ())
    return CitizenLauncher(apps, desktop)


def main(argv: list[str] | None = None) -> int:
    """``python -m kiosk.desktop reset | copy-to DIR``: the root half of a session's end and
    of "copy my files to the USB stick" (through sudo)."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["reset"]:
        page = None if sys.stdin.isatty() else sys.stdin.read(MAX_PAGE_BYTES) or None
        reset_home(DesktopConfig(), page)
        return 0
    if len(args) == 2 and args[0] == "copy-to":
        from kiosk.usb import copy_files, removable_mounts

        target = Path(args[1])
        if target not in removable_mounts():  # only ever onto a plugged-in stick
            print(f"{target} is not a removable disk", file=sys.stderr)
            return 1
        d = DesktopConfig()
        launcher_files = [p for sub in SESSION_DIRS for p in sorted(
            (d.home / sub).rglob("*")) if p.is_file()]
        print(len(copy_files(launcher_files, d.home, target)))
        return 0
    print("usage: python -m kiosk.desktop reset | copy-to MOUNTPOINT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
