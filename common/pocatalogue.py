"""A gettext ``.po`` catalogue read with Babel, as the kiosk and the hub dashboard use them."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po


def read_catalogue(path: Path) -> dict[str, str]:
    """msgid -> translation from ``path`` (missing file: empty; untranslated and fuzzy
    entries left out, so the caller falls back to the msgid)."""
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        cat = read_po(f, locale=None)
    return {str(m.id): str(m.string) for m in cat if m.id and isinstance(m.string, str)
            and m.string and not m.fuzzy}
