#!/usr/bin/env python3
"""Build sparvar's captioned training set from two Debian packages (see install_data_packages.sh).

Sources
- fonts-noto-color-emoji: every colour bitmap of NotoColorEmoji.ttf's CBDT table (PNG, 136x128). A glyph's
  code-point sequence comes from the cmap (single code points) or from the GSUB ligature lookups (ZWJ
  sequences, skin tones, flags, keycaps), expanded recursively until every component is a cmap code point.
  Caption = the lower-cased Unicode names of the sequence's code points (python's unicodedata), with the
  joiners / variation selectors dropped, skin-tone modifiers named 'light skin tone' etc., regional-indicator
  pairs and tag sequences written as 'flag <code>'. Glyphs whose code points this Python's Unicode database
  does not name (emoji newer than its Unicode version) are skipped and counted.
- tuxpaint-stamps-default: the PNG stamps (not the '_mirror' copies) with the English description (the first
  line of the .txt that is not a 'xx.utf8=' translation). SVG-only stamps are skipped: no rasteriser here.

Why sprites and not finished images: the GPU machine has no network, so the set is built here and carried
there, and the carry should stay well under ~40 MB. 256x256 RGB images would be ~1 GB raw and ~100 MB as
PNG (upscaled emoji do not compress well), while the source sprites (RGBA, emoji at their native 136x128,
stamps shrunk to fit the content box) are ~30 MB. `render()` below composites a sprite onto the plain
background and resizes it into the training resolution; build_dataset, the trainers and the tests all use it,
so there is one definition of "the training image".

Output (default <repo>/.data/sparvar_set/): sprites.npz (one uint8 array of concatenated PNG bytes + offsets)
and captions.json (per item: caption, source, key, split) plus heldout_prompts.txt. The split is fixed: a
seeded shuffle of the item keys, `--heldout` of them held out. Nothing here is committed.
"""
import argparse
import glob
import io
import json
import os
import random
import re
import sys
import unicodedata

import numpy as np
from PIL import Image

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
STAMPS_DIR = "/usr/share/tuxpaint/stamps"
REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_OUT = os.path.join(REPO, ".data", "sparvar_set")

BACKGROUND = (255, 255, 255)
CONTENT_FRACTION = 0.875      # sprite fits in 224 of 256 pixels: a margin the VAE's border convs like
STAMP_STORE_MAX = 224         # stamps larger than this (max side) are shrunk at build time to keep the file small

_SKIN = {0x1F3FB: "light skin tone", 0x1F3FC: "medium-light skin tone", 0x1F3FD: "medium skin tone",
         0x1F3FE: "medium-dark skin tone", 0x1F3FF: "dark skin tone"}
_DROP = {0x200D, 0xFE0F, 0xFE0E, 0xE007F}
_SPECIAL = {0x20E3: "keycap"}


# ---------------------------------------------------------------------------------------------------------
# rendering (shared with the trainers)
def render(png_bytes: bytes, size: int, background=BACKGROUND, fraction=CONTENT_FRACTION) -> np.ndarray:
    """Sprite PNG -> (size, size, 3) uint8: aspect-preserving fit into fraction*size, centred, alpha-composited
    onto the plain background. Deterministic for a given Pillow version."""
    im = Image.open(io.BytesIO(png_bytes))
    im = im.convert("RGBA")
    box = max(1, int(round(size * fraction)))
    w, h = im.size
    s = box / max(w, h)
    nw, nh = max(1, int(round(w * s))), max(1, int(round(h * s)))
    im = im.resize((nw, nh), Image.LANCZOS)
    canvas = Image.new("RGBA", (size, size), tuple(background) + (255,))
    canvas.alpha_composite(im, ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas.convert("RGB"), dtype=np.uint8)


def load_set(directory: str):
    """-> (list of PNG bytes, list of item dicts) as written by this script."""
    z = np.load(os.path.join(directory, "sprites.npz"))
    blob, off = z["blob"], z["offsets"]
    sprites = [blob[off[i]:off[i + 1]].tobytes() for i in range(len(off) - 1)]
    with open(os.path.join(directory, "captions.json")) as f:
        items = json.load(f)["items"]
    assert len(items) == len(sprites)
    return sprites, items


def save_set(directory: str, sprites, items, extra=None):
    os.makedirs(directory, exist_ok=True)
    off = np.zeros(len(sprites) + 1, np.int64)
    off[1:] = np.cumsum([len(s) for s in sprites])
    blob = np.frombuffer(b"".join(sprites), np.uint8)
    np.savez(os.path.join(directory, "sprites.npz"), blob=blob, offsets=off)
    meta = dict(extra or {})
    meta["items"] = items
    with open(os.path.join(directory, "captions.json"), "w") as f:
        json.dump(meta, f, indent=0, ensure_ascii=False)
    held = sorted({it["caption"] for it in items if it["split"] == "heldout"})
    with open(os.path.join(directory, "heldout_prompts.txt"), "w") as f:
        f.write("\n".join(held) + "\n")


# ---------------------------------------------------------------------------------------------------------
# emoji
def _glyph_sequences(font):
    """glyph name -> tuple of code points, from the cmap and (recursively) the GSUB ligatures."""
    seq = {}
    for cp, g in sorted(font.getBestCmap().items()):
        seq.setdefault(g, (cp,))
    ligs = []
    if "GSUB" in font:
        for lookup in font["GSUB"].table.LookupList.Lookup:
            subs = lookup.SubTable
            if lookup.LookupType == 7:   # extension lookups wrap the real subtable
                subs = [s.ExtSubTable for s in subs]
            for st in subs:
                for first, lst in getattr(st, "ligatures", {}).items():
                    for lig in lst:
                        ligs.append((lig.LigGlyph, [first] + list(lig.Component)))
    changed = True
    while changed:
        changed = False
        for out, comps in ligs:
            if out in seq or not all(c in seq for c in comps):
                continue
            seq[out] = tuple(cp for c in comps for cp in seq[c])
            changed = True
    return {g: _noto_order(s) for g, s in seq.items()}


def _noto_order(cps):
    """Noto's GSUB lists a ZWJ sequence with its ZWJ-separated segments in reverse order, and a skin-tone
    modifier of the (true) last person at the start of a later segment. Undo both to get the Unicode order
    (checked on families, couples with skin tones, professions, gendered and directional sequences)."""
    if 0x200D not in cps:
        return tuple(cps)
    segs = [[]]
    for cp in cps:
        if cp == 0x200D:
            segs.append([])
        else:
            segs[-1].append(cp)
    for s in segs[1:]:
        while s and s[0] in _SKIN:
            segs[0].append(s.pop(0))
    out = []
    for i, s in enumerate(reversed(segs)):
        if i:
            out.append(0x200D)
        out.extend(s)
    return tuple(out)


def emoji_caption(cps):
    """Unicode names of a code-point sequence as a lower-case caption; None if a name is unknown."""
    ri = [cp for cp in cps if 0x1F1E6 <= cp <= 0x1F1FF]
    if ri and len(ri) == len(cps):
        return "flag " + "".join(chr(ord("a") + cp - 0x1F1E6) for cp in ri)
    tags = [cp for cp in cps if 0xE0020 <= cp <= 0xE007E]
    if tags:
        return "flag " + "".join(chr(cp - 0xE0000) for cp in tags).lower()
    words = []
    for cp in cps:
        if cp in _DROP:
            continue
        if cp in _SKIN:
            words.append(_SKIN[cp])
        elif cp in _SPECIAL:
            words.append(_SPECIAL[cp])
        else:
            try:
                words.append(unicodedata.name(chr(cp)).lower())
            except ValueError:
                return None
    return " ".join(words) if words else None


def collect_emoji(font_path=EMOJI_FONT):
    from fontTools.ttLib import TTFont
    font = TTFont(font_path)
    seqs = _glyph_sequences(font)
    strike = font["CBDT"].strikeData[0]
    out, stats = [], dict(bitmaps=len(strike), single=0, sequence=0, no_sequence=0, unnamed=0)
    for g in sorted(strike):
        bmp = strike[g]
        data = getattr(bmp, "imageData", None)
        if not data or g not in seqs:
            stats["no_sequence"] += 1
            continue
        cps = seqs[g]
        if all(cp < 0x80 for cp in cps):     # plain ASCII glyphs ('#', digits) drawn as emoji: keep keycaps only
            stats["no_sequence"] += 1
            continue
        cap = emoji_caption(cps)
        if cap is None:
            stats["unnamed"] += 1
            continue
        stats["single" if len(cps) == 1 else "sequence"] += 1
        key = "emoji/" + "_".join(f"{cp:04x}" for cp in cps)
        out.append((key, cap, bytes(data)))
    return out, stats


# ---------------------------------------------------------------------------------------------------------
# tux paint stamps
_TRANSLATION = re.compile(r"^[a-z]{2,3}(_[A-Za-z]{2,4})?(@[a-z]+)?\.utf-?8\s*=", re.I)


def stamp_caption(txt_path):
    with open(txt_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or _TRANSLATION.match(line):
                continue
            cap = re.sub(r"\s+", " ", line).strip().rstrip(".!").strip().lower()
            return cap or None
    return None


def _shrink_png(path, max_side):
    im = Image.open(path).convert("RGBA")
    w, h = im.size
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        im = im.resize((max(1, int(round(w * s))), max(1, int(round(h * s)))), Image.LANCZOS)
    bb = im.getbbox()          # crop fully transparent borders so the fit uses the drawing, not empty canvas
    if bb:
        im = im.crop(bb)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def collect_stamps(stamps_dir=STAMPS_DIR):
    out, stats = [], dict(png=0, mirror=0, no_text=0, svg_skipped=0)
    stats["svg_skipped"] = len(glob.glob(os.path.join(stamps_dir, "**", "*.svg"), recursive=True))
    for p in sorted(glob.glob(os.path.join(stamps_dir, "**", "*.png"), recursive=True)):
        stats["png"] += 1
        base = p[:-4]
        if base.endswith("_mirror"):
            stats["mirror"] += 1
            continue
        txt = base + ".txt"
        cap = stamp_caption(txt) if os.path.exists(txt) else None
        if not cap:
            stats["no_text"] += 1
            continue
        key = "stamp/" + os.path.relpath(base, stamps_dir)
        out.append((key, cap, _shrink_png(p, STAMP_STORE_MAX)))
    return out, stats


# ---------------------------------------------------------------------------------------------------------
def assign_split(keys, heldout: int, seed: int):
    order = sorted(keys)
    random.Random(seed).shuffle(order)
    held = set(order[:heldout])
    return {k: ("heldout" if k in held else "train") for k in keys}


def build(out_dir, seed=0, heldout=200, emoji_font=EMOJI_FONT, stamps_dir=STAMPS_DIR, preview_size=256):
    emoji, es = collect_emoji(emoji_font)
    stamps, ss = collect_stamps(stamps_dir)
    allitems = emoji + stamps
    split = assign_split([k for k, _, _ in allitems], heldout, seed)
    sprites, items = [], []
    for (key, cap, png) in allitems:
        sprites.append(png)
        items.append(dict(key=key, caption=cap, source=key.split("/")[0], split=split[key]))
    save_set(out_dir, sprites, items, extra=dict(seed=seed, background=list(BACKGROUND),
                                                  content_fraction=CONTENT_FRACTION, emoji_stats=es, stamp_stats=ss))
    # preview: the first 16 held-out items rendered at the training resolution
    held = [i for i, it in enumerate(items) if it["split"] == "heldout"][:16]
    if held:
        tiles = [render(sprites[i], preview_size // 2) for i in held]
        while len(tiles) % 4:
            tiles.append(np.full_like(tiles[0], 255))
        rows = [np.concatenate(tiles[r:r + 4], 1) for r in range(0, len(tiles), 4)]
        Image.fromarray(np.concatenate(rows, 0)).save(os.path.join(out_dir, "preview_heldout.png"))
    return dict(emoji=len(emoji), stamps=len(stamps), emoji_stats=es, stamp_stats=ss,
                train=sum(it["split"] == "train" for it in items), heldout=sum(it["split"] == "heldout" for it in items),
                heldout_prompts=len({it["caption"] for it in items if it["split"] == "heldout"}),
                bytes=os.path.getsize(os.path.join(out_dir, "sprites.npz")))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout", type=int, default=200, help="items held out (fixed by --seed)")
    ap.add_argument("--emoji-font", default=EMOJI_FONT)
    ap.add_argument("--stamps-dir", default=STAMPS_DIR)
    a = ap.parse_args(argv)
    for p in (a.emoji_font, a.stamps_dir):
        if not os.path.exists(p):
            sys.exit(f"{p} not found: run python/train/install_data_packages.sh first")
    r = build(a.out, a.seed, a.heldout, a.emoji_font, a.stamps_dir)
    print(f"emoji: {r['emoji']} ({r['emoji_stats']})")
    print(f"stamps: {r['stamps']} ({r['stamp_stats']})")
    print(f"split: train {r['train']}, held-out {r['heldout']} items / {r['heldout_prompts']} distinct prompts")
    print(f"wrote {a.out}/sprites.npz ({r['bytes'] / 2**20:.1f} MiB), captions.json, heldout_prompts.txt, preview_heldout.png")


if __name__ == "__main__":
    main()
