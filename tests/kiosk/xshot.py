"""A screenshot of the whole X screen as PNG (xwd, then a small XWD -> PNG converter: the
kiosk's own Window.screenshot only sees the kiosk window, not the apps below it)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path


def _png(width: int, height: int, rows: list[bytes]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pixels(display: str) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of the root window of ``display``."""
    xwd = subprocess.run(["xwd", "-root", "-silent", "-display", display],
                         capture_output=True, check=True, timeout=20).stdout
    return xwd_pixels(xwd)


def xwd_pixels(xwd: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of an XWD image (xwd's output, or the screen file that
    ``Xvfb -fbdir DIR`` keeps in DIR/Xvfb_screen0)."""
    h = struct.unpack(">25I", xwd[:100])
    header_size, width, height, bpp, bpl, ncolors = h[0], h[4], h[5], h[11], h[12], h[19]
    byte_order = h[7]
    assert bpp in (24, 32), f"only 24 or 32 bits per pixel are handled, got {bpp}"
    n = bpp // 8
    off = header_size + ncolors * 12
    rows = []
    for y in range(height):
        line = xwd[off + y * bpl: off + y * bpl + width * n]
        out = bytearray(width * 3)
        if byte_order == 0:  # LSBFirst: B G R (X)
            out[0::3], out[1::3], out[2::3] = line[2::n], line[1::n], line[0::n]
        else:
            out[0::3], out[1::3], out[2::3] = line[n - 3::n], line[n - 2::n], line[n - 1::n]
        rows.append(bytes(out))
    return width, height, rows


def screenshot(display: str, target: Path) -> Path:
    return write_png(pixels(display), target)


def write_png(image: tuple[int, int, list[bytes]], target: Path) -> Path:
    w, h, rows = image
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_png(w, h, rows))
    return target
