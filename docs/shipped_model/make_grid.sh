#!/usr/bin/env bash
# Draws the evidence grid of the shipped model: 8 training captions (top row) and 8 held-out prompts (bottom
# row, never seen in training), seed 0, dense attention, on the CPU. Needs Debian's python3-pil for the grid.
#   bash docs/shipped_model/make_grid.sh [build/src/cli/sparvar]
set -euo pipefail
cd "$(dirname "$0")/../.."
sparvar=${1:-build/src/cli/sparvar}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
printf '%s\n' "red apple" "dog face" "grinning face" "cat face" "fire engine" "banana" "rainbow" "tiger face" \
  >"$work/train.txt"
printf '%s\n' "a fly" "a hand" "a mermaid" "a rubber duck" "a blue fedora" "a red gazania" "a ram" "a prune" \
  >"$work/heldout.txt"
for set in train heldout; do
  "$sparvar" generate --device cpu --prompts-file "$work/$set.txt" --seed 0 -o "$work/$set.png" | tail -1
done
/usr/bin/python3 - "$work" docs/shipped_model/grid_train_heldout.png <<'PY'
import sys
from PIL import Image, ImageDraw
work, out = sys.argv[1], sys.argv[2]
rows = [[l.strip() for l in open(f"{work}/{s}.txt")] for s in ("train", "heldout")]
S, pad = 256, 18
grid = Image.new("RGB", (8 * S, 2 * (S + pad)), "white")
draw = ImageDraw.Draw(grid)
for r, (name, prompts) in enumerate(zip(("train", "heldout"), rows)):
    for c, p in enumerate(prompts):
        grid.paste(Image.open(f"{work}/{name}_{c}.png").convert("RGB"), (c * S, r * (S + pad) + pad))
        draw.text((c * S + 4, r * (S + pad) + 3), f"{'train' if r == 0 else 'held-out'}: {p}", fill="black")
grid.save(out)
print("wrote", out)
PY
