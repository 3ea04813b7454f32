"""Counts the pixels of one colour in a PNG, with the standard library only (zlib, struct).

    python3 png_pixels.py FILE RRGGBB TOLERANCE

prints `WIDTH HEIGHT COUNT`: how many pixels have every channel within TOLERANCE of the colour
(alpha is ignored). Handles what a browser's screenshot is: 8-bit RGB or RGBA, not interlaced,
with any of the five row filters. Anything else exits with status 1 and says why.
Used by tests/inspect.rs to find the plot in a screenshot.
"""

import struct
import sys
import zlib


def fail(message):
    print(f"png_pixels: {message}", file=sys.stderr)
    sys.exit(1)


def chunks(data):
    """The (type, body) chunks after the signature."""
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        yield kind, data[pos + 8 : pos + 8 + length]
        pos += 12 + length


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def rows(raw, width, height, bpp):
    """The unfiltered rows, each `width * bpp` bytes."""
    stride = width * bpp
    previous = bytearray(stride)
    pos = 0
    for _ in range(height):
        kind = raw[pos]
        row = bytearray(raw[pos + 1 : pos + 1 + stride])
        pos += 1 + stride
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            for i in range(stride):
                row[i] = (row[i] + previous[i]) & 0xFF
        elif kind == 3:  # Average
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                upper_left = previous[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + paeth(left, previous[i], upper_left)) & 0xFF
        elif kind != 0:
            fail(f"unknown row filter {kind}")
        yield row
        previous = row


def main():
    if len(sys.argv) != 4:
        fail("usage: png_pixels.py FILE RRGGBB TOLERANCE")
    path, colour, tolerance = sys.argv[1], sys.argv[2], int(sys.argv[3])
    want = bytes.fromhex(colour)
    with open(path, "rb") as file:
        data = file.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(f"{path} is not a PNG")
    header, idat = None, bytearray()
    for kind, body in chunks(data):
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    if header is None:
        fail("no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace != 0:
        fail(f"unsupported PNG: depth {depth}, colour type {colour_type}, interlace {interlace}")
    bpp = 3 if colour_type == 2 else 4
    count = 0
    for row in rows(zlib.decompress(bytes(idat)), width, height, bpp):
        for x in range(0, len(row), bpp):
            if all(abs(row[x + c] - want[c]) <= tolerance for c in range(3)):
                count += 1
    print(width, height, count)


main()
