#!/usr/bin/env python3
"""Writes the fuzz_png seeds: tiny PNGs of every colour type decode_png handles (gray, gray+alpha, RGB,
RGBA, palette with tRNS, 16-bit, 1-bit gray, Adam7 interlaced, multi-IDAT). Standard library only.
    python3 fuzz/corpus/make_png_seeds.py fuzz/corpus/fuzz_png"""
import struct
import sys
import zlib
from pathlib import Path


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, bit_depth, color_type, rows, extra=b"", interlace=0, split_idat=False):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 (None) on every scanline
    z = zlib.compress(raw, 9)
    idat = chunk(b"IDAT", z[: len(z) // 2]) + chunk(b"IDAT", z[len(z) // 2 :]) if split_idat else chunk(b"IDAT", z)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + idat + chunk(b"IEND", b"")


def main(out: Path):
    out.mkdir(parents=True, exist_ok=True)
    w, h = 3, 2
    seeds = {
        "gray8.png": png(w, h, 8, 0, [bytes([10 * x + 50 * y for x in range(w)]) for y in range(h)]),
        "gray_alpha.png": png(w, h, 8, 4, [bytes(v for x in range(w) for v in (x * 40, 255 - y)) for y in range(h)]),
        "rgb8.png": png(w, h, 8, 2, [bytes((x * 80 + c * 20 + y) % 256 for x in range(w) for c in range(3))
                                     for y in range(h)], extra=chunk(b"gAMA", struct.pack(">I", 45455))),
        "rgba8.png": png(w, h, 8, 6, [bytes((x * 60 + c * 30 + y) % 256 for x in range(w) for c in range(4))
                                      for y in range(h)], split_idat=True),
        "palette_trns.png": png(w, h, 8, 3, [bytes([(x + y) % 3 for x in range(w)]) for y in range(h)],
                                extra=chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255])) +
                                chunk(b"tRNS", bytes([0, 128]))),
        "rgb16.png": png(2, 2, 16, 2, [struct.pack(">6H", *(1000 * (i + y) for i in range(6))) for y in range(2)]),
        "gray1.png": png(8, 2, 1, 0, [b"\xa5", b"\x5a"]),
        "gray_trns.png": png(w, h, 8, 0, [bytes([0, 128, 255]) for _ in range(h)],
                             extra=chunk(b"tRNS", struct.pack(">H", 128))),
    }
    # Adam7: 4x4 gray, seven passes of (w, h) 1x1, 1x1, 2x1, 2x2, 4x2... built from the pass geometry.
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    size = 4
    img = [[(x * 16 + y * 64) % 256 for x in range(size)] for y in range(size)]
    raw = b""
    for x0, y0, dx, dy in passes:
        xs, ys = range(x0, size, dx), range(y0, size, dy)
        if len(xs) and len(ys):
            raw += b"".join(b"\x00" + bytes(img[y][x] for x in xs) for y in ys)
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 1)
    seeds["adam7.png"] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
                          chunk(b"IEND", b""))
    for name, data in seeds.items():
        (out / name).write_bytes(data)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
