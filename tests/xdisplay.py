"""A private Xvfb, and what is on it: the top-level windows (xwininfo) and a screenshot of the
whole display (xwd, decoded here and written as PNG with zlib: no imaging library needed).
Debian packages: xvfb, x11-utils (xwininfo), x11-apps (xwd)."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

XWD_HEADER = struct.Struct(">25I")  # the 25 CARD32 fields of an XWD file header


class Xvfb:
    """`Xvfb -displayfd`: the server picks a free display number and tells it."""

    def __init__(self, size: str = "1280x800x24") -> None:
        if shutil.which("Xvfb") is None:
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb)")
        r, w = os.pipe()
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", size,
                                      "-nolisten", "tcp"], pass_fds=(w,),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            num = f.readline().strip()
        if not num:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("Xvfb did not start")
        self.display = f":{num}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@dataclass(frozen=True)
class Window:
    wid: str
    name: str
    width: int
    height: int


def top_windows(display: str) -> list[Window]:
    """The mapped children of the root window with their size (`xwininfo -root -children`)."""
    out = subprocess.run(["xwininfo", "-root", "-children", "-display", display],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    found = []
    for m in re.finditer(r"^\s+(0x[0-9a-f]+) (\"[^\"]*\"|\(has no name\)).*?(\d+)x(\d+)[+-]",
                         out, re.MULTILINE):
        wid = m.group(1)
        info = subprocess.run(["xwininfo", "-id", wid, "-display", display],
                              capture_output=True, text=True, timeout=10, check=False).stdout
        if "IsViewable" in info:
            found.append(Window(wid, m.group(2).strip('"'), int(m.group(3)), int(m.group(4))))
    return found


def screenshot(display: str, png: Path) -> int:
    """Write the whole display to `png`; returns how many distinct colours it shows (1 = a
    blank screen)."""
    raw = subprocess.run(["xwd", "-root", "-silent", "-display", display],
                         capture_output=True, timeout=20, check=True).stdout
    h = XWD_HEADER.unpack_from(raw)
    header_size, width, height = h[0], h[4], h[5]
    byte_order, bpp, bytes_per_line, ncolors = h[7], h[11], h[12], h[19]
    if bpp not in (24, 32):
        raise ValueError(f"xwd gave {bpp} bits per pixel; only 24 and 32 are decoded here")
    step = bpp // 8
    data = raw[header_size + 12 * ncolors:]
    # LSBFirst pixels are B G R (X); MSBFirst are (X) R G B
    order = (2, 1, 0) if byte_order == 0 else tuple(range(step - 3, step))
    rows, colours = [], set()
    for y in range(height):
        line = data[y * bytes_per_line: y * bytes_per_line + step * width]
        planes = [line[o::step] for o in order]
        rgb = bytearray(3 * width)
        rgb[0::3], rgb[1::3], rgb[2::3] = planes
        if y % 8 == 0:
            colours.update(bytes(rgb[i:i + 3]) for i in range(0, len(rgb), 3 * 8))
        rows.append(b"\x00" + bytes(rgb))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    png.parent.mkdir(parents=True, exist_ok=True)
    png.write_bytes(b"\x89PNG\r\n\x1a\n"
                    + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
                    + chunk(b"IEND", b""))
    return len(colours)
