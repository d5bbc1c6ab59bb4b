"""Rewrite each starter package's manifest.json with its files' sizes, sha256 and media types.

Run from the repository root after editing a file:
``.venv/bin/python content/refresh_manifests.py``.
The hub recomputes all of this itself on ``cac-hub add-content`` (and assigns the version);
the refreshed manifests keep the repository's copy honest and reviewable.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hub.content import MANIFEST, scan_package  # noqa: E402

HERE = Path(__file__).resolve().parent


def main() -> int:
    for d in sorted(p for p in HERE.iterdir() if (p / MANIFEST).is_file()):
        manifest = scan_package(d, version=1)
        text = json.dumps(manifest, ensure_ascii=False, indent=1) + "\n"
        (d / MANIFEST).write_text(text, encoding="utf-8")
        print(f"{manifest['id']}: {len(manifest['files'])} files, "
              f"{sum(f['size'] for f in manifest['files'])} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
