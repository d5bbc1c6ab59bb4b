"""The kiosk's optional TOML config (``--config kiosk.toml``): strict, errors name the key.

```toml
idle_seconds = 300            # no touch this long during a session ends it (0: never)
idle_warning_seconds = 30     # "are you still there?" countdown before that
receipt_seconds = 20          # the receipt goes back to the welcome screen after this
poll_seconds = 2              # GET /session interval (also the station's heartbeat)
retry_seconds = 5             # out-of-service retry interval
state_dir = "/var/lib/cac-kiosk"   # the remembered language
exit_pin_hash = "pbkdf2_sha256$600000$<salt hex>$<hash hex>"   # cac-kiosk --hash-pin
large_text_scale = 1.35
speak_on_arrival = false      # say each screen aloud when it opens ("Listen" always does)
ask_profile = true            # the anonymous "help us count" screen after a redeem
recorded_voice_dir = "/var/lib/cac-kiosk/recorded-voice"   # default: <state_dir>/...
    # <lang>/<screen>.wav|.ogg|.mp3 recorded by the CAC win over espeak-ng (no zgh voice)

[[apps]]                      # applications a citizen may open during a session
id = "browser"
name = "Web browser"
command = ["chromium", "--incognito", "--user-data-dir=/home/kiosk/.cac/browser"]
wipe = ["/home/kiosk/.cac/browser", "/home/kiosk/Downloads"]   # emptied at session end

[portal]
open_command = ["chromium", "--app={url}"]   # opens a content file that is not text
```
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wire.config_check import ConfigError, check_int, no_unknown, string, table

PIN_ITERATIONS = 600_000
PIN_RE = re.compile(r"pbkdf2_sha256\$(\d{4,8})\$([0-9a-f]{16,128})\$([0-9a-f]{64})")


@dataclass(frozen=True)
class AppSpec:
    id: str
    name: str
    command: tuple[str, ...]
    wipe: tuple[Path, ...] = ()


@dataclass(frozen=True)
class KioskConfig:
    idle_seconds: int = 300
    idle_warning_seconds: int = 30
    receipt_seconds: int = 20
    poll_seconds: float = 2.0
    retry_seconds: int = 5
    state_dir: Path = field(default_factory=lambda: default_state_dir())
    exit_pin_hash: str | None = None
    large_text_scale: float = 1.35
    speak_on_arrival: bool = False
    ask_profile: bool = True  # the "help us count" screen after a redeem (CONTRACT §9b)
    recorded_voice_dir: Path | None = None  # None: <state_dir>/recorded-voice
    apps: tuple[AppSpec, ...] = ()
    open_command: tuple[str, ...] = ()
    desktop: Any = None  # kiosk.desktop.DesktopConfig: apps as the citizen user, the bar


def default_state_dir() -> Path:
    """Where the kiosk keeps its few files: systemd's StateDirectory= when the unit sets one
    ($STATE_DIRECTORY, the first of a colon-separated list), else $XDG_STATE_HOME/cac-kiosk,
    else ~/.local/state/cac-kiosk. It may not exist yet: `ensure_private_dir` makes it."""
    unit_dir = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if unit_dir:
        return Path(unit_dir)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cac-kiosk"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` with its parents; what this creates is mode 0700 (a new account has no
    ~/.local/state, and Kivy's own mkdir of KIVY_HOME is not recursive). Raises OSError."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    return path


def _number(key: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ConfigError(key, f"must be between {lo} and {hi}, got {value}")
    return float(value)


def _command(key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v
                                                           for v in value):
        raise ConfigError(key, "must be a non-empty list of strings (program and arguments)")
    return tuple(value)


def dangerous_dir(path: Path) -> str | None:
    """Why wiping ``path`` would be a disaster, or None when it is a plain sub-folder."""
    if not path.is_absolute():
        return "must be an absolute path"
    p = Path(os.path.normpath(path))
    home = Path.home()
    if len(p.parts) < 3:
        return "is too close to / to be wiped"
    if p in (home, home.parent) or p in {Path(x) for x in ("/usr/lib", "/var/lib", "/home")}:
        return "is a system or home folder, not an application's own folder"
    return None


def parse_config(raw: dict[str, Any], base: Path | None = None) -> KioskConfig:
    no_unknown(raw, {"idle_seconds", "idle_warning_seconds", "receipt_seconds", "poll_seconds",
                     "retry_seconds", "state_dir", "exit_pin_hash", "large_text_scale", "apps",
                     "portal", "desktop", "speak_on_arrival", "recorded_voice_dir",
                     "ask_profile"}, "")
    d = KioskConfig()
    kw: dict[str, Any] = {}
    if "idle_seconds" in raw:
        kw["idle_seconds"] = check_int("idle_seconds", raw["idle_seconds"], 0, 24 * 3600)
    if "idle_warning_seconds" in raw:
        kw["idle_warning_seconds"] = check_int("idle_warning_seconds",
                                               raw["idle_warning_seconds"], 1, 600)
    if "receipt_seconds" in raw:
        kw["receipt_seconds"] = check_int("receipt_seconds", raw["receipt_seconds"], 1, 600)
    if "poll_seconds" in raw:
        kw["poll_seconds"] = _number("poll_seconds", raw["poll_seconds"], 0.1, 30)
    if "retry_seconds" in raw:
        kw["retry_seconds"] = check_int("retry_seconds", raw["retry_seconds"], 1, 300)
    if "large_text_scale" in raw:
        kw["large_text_scale"] = _number("large_text_scale", raw["large_text_scale"], 1.0, 3.0)
    if "state_dir" in raw:
        p = Path(string(raw["state_dir"], "state_dir"))
        kw["state_dir"] = p if p.is_absolute() or base is None else base / p
    if "speak_on_arrival" in raw:
        if not isinstance(raw["speak_on_arrival"], bool):
            raise ConfigError("speak_on_arrival", "must be true or false")
        kw["speak_on_arrival"] = raw["speak_on_arrival"]
    if "ask_profile" in raw:
        if not isinstance(raw["ask_profile"], bool):
            raise ConfigError("ask_profile", "must be true or false")
        kw["ask_profile"] = raw["ask_profile"]
    if "recorded_voice_dir" in raw:
        p = Path(string(raw["recorded_voice_dir"], "recorded_voice_dir"))
        kw["recorded_voice_dir"] = p if p.is_absolute() or base is None else base / p
    if "exit_pin_hash" in raw:
        h = string(raw["exit_pin_hash"], "exit_pin_hash")
        if not PIN_RE.fullmatch(h):
            raise ConfigError("exit_pin_hash", "must be a hash made by `cac-kiosk --hash-pin` "
                              "(pbkdf2_sha256$ITERATIONS$SALT$HASH), never the PIN itself")
        kw["exit_pin_hash"] = h
    apps = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("apps", [])):
        key = f"apps[{i}]"
        t = table(item, key)
        no_unknown(t, {"id", "name", "command", "wipe"}, key)
        for k in ("id", "name", "command"):
            if k not in t:
                raise ConfigError(f"{key}.{k}", "is required")
        app_id = string(t["id"], f"{key}.id")
        if not re.fullmatch(r"[a-z0-9-]{1,32}", app_id) or app_id in seen:
            raise ConfigError(f"{key}.id", "must be unique and match [a-z0-9-]{1,32}")
        seen.add(app_id)
        wipe = t.get("wipe", [])
        if not isinstance(wipe, list):
            raise ConfigError(f"{key}.wipe", "must be a list of folders")
        dirs = []
        for j, w in enumerate(wipe):
            p = Path(string(w, f"{key}.wipe[{j}]"))
            why = dangerous_dir(p)
            if why:
                raise ConfigError(f"{key}.wipe[{j}]", f"{w!r} {why}")
            dirs.append(p)
        apps.append(AppSpec(app_id, string(t["name"], f"{key}.name"),
                            _command(f"{key}.command", t["command"]), tuple(dirs)))
    kw["apps"] = tuple(apps)
    if "desktop" in raw:
        from kiosk.desktop import default_apps, parse_desktop

        kw["desktop"] = parse_desktop(raw["desktop"])
        if not apps and kw["desktop"].default_apps:
            kw["apps"] = default_apps(kw["desktop"])
    if "portal" in raw:
        portal = table(raw["portal"], "portal")
        no_unknown(portal, {"open_command"}, "portal")
        if "open_command" in portal:
            kw["open_command"] = _command("portal.open_command", portal["open_command"])
    return KioskConfig(**{**d.__dict__, **kw})


def load_config(path: Path) -> KioskConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path} is not valid TOML: {exc}") from None
    return parse_config(raw, path.parent)


# ---------------------------------------------------------------- exit PIN


def hash_pin(pin: str, iterations: int = PIN_ITERATIONS) -> str:
    if not re.fullmatch(r"\d{4,12}", pin):
        raise ValueError("the PIN must be 4 to 12 digits")
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def check_pin(pin: str, stored: str | None) -> bool:
    """Slow on purpose: call it off the UI thread."""
    m = PIN_RE.fullmatch(stored or "")
    if m is None:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(m.group(2)),
                                 int(m.group(1)))
    return hmac.compare_digest(digest.hex(), m.group(3))
