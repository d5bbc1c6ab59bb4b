"""What a station's kiosk remembers across restarts: the language last chosen (one small
JSON file per station in the state folder). Nothing that matters: the agent owns the rest."""

from __future__ import annotations

import json
import os
from pathlib import Path

from kiosk.i18n import LANGS


def state_file(state_dir: Path, station: str) -> Path:
    return state_dir / f"station-{station}.json"


def remembered_lang(path: Path) -> str | None:
    """The language remembered in ``path``; None when missing, unreadable or unknown."""
    try:
        lang = json.loads(path.read_text(encoding="utf-8")).get("lang")
    except (OSError, ValueError, AttributeError):
        return None
    return lang if lang in LANGS else None


def remember_lang(path: Path, lang: str) -> None:
    """Blocking file I/O: run it off the UI thread."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"lang": lang}), encoding="utf-8")
    os.replace(tmp, path)
