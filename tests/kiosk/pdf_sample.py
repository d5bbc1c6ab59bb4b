"""A small valid PDF written by hand (no PDF library in the tests' own path): ``pages``
A4 pages, each with its number in big letters and a black bar whose position tells the
pages apart in a screenshot."""

from __future__ import annotations


def sample_pdf(pages: int = 3) -> bytes:
    objs: dict[int, bytes] = {1: b"<</Type/Catalog/Pages 2 0 R>>",
                              3: b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>"}
    kids = []
    for i in range(pages):
        page_id, content_id = 10 + 2 * i, 11 + 2 * i
        kids.append(f"{page_id} 0 R".encode())
        y = 700 - 150 * i
        stream = (f"BT /F1 72 Tf 72 {y} Td (Page {i + 1}) Tj ET\n"
                  f"0 0 0 rg 72 {y - 40} 450 20 re f\n").encode()
        objs[content_id] = (b"<</Length %d>>stream\n" % len(stream)) + stream + b"endstream"
        objs[page_id] = (b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]"
                         b"/Resources<</Font<</F1 3 0 R>>>>/Contents %d 0 R>>" % content_id)
    objs[2] = b"<</Type/Pages/Kids[" + b" ".join(kids) + b"]/Count %d>>" % pages
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for n in sorted(objs):
        offsets[n] = len(out)
        out += b"%d 0 obj\n" % n + objs[n] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        out += (b"%010d 00000 n \n" % offsets[n]) if n in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)
