#!/bin/bash
# Train sparvar's shipped model end to end: data -> tokenizer -> VAE -> Infinity (+ T5, jointly) -> export.
#
#   python/train/train_all.sh                 # all stages (the GPU machine skips data/tokenizer: already built)
#   python/train/train_all.sh vae             # one or more stages: data tokenizer vae infinity export
#   STOP_AFTER=9 python/train/train_all.sh vae infinity   # end this call after 9 min per stage; rerun to resume
#
# Budgets (minutes of training, env): VAE_MIN=8 INF_MIN=14 -> ~25 min on one H100 with rendering, label
# encoding, sampling and export. Every stage resumes from its checkpoint (--resume), and a finished stage
# returns at once, so rerunning the same command continues where the last call stopped (the device tool
# allows 10 min per call: run with STOP_AFTER=9 three times).
# The dataset (.data/sparvar_set, ~25 MB) and the tokenizer (.data/tokenizer) must be built HERE (Debian
# packages, see install_data_packages.sh) and carried to the GPU machine, which has no network.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${PYTHON:-}" ]; then
    if python3 -c "import torch" 2>/dev/null; then PYTHON=python3; else PYTHON=/usr/bin/python3; fi
fi
export PYTHONUNBUFFERED=1
DATA=${DATA:-.data}
VAE_MIN=${VAE_MIN:-8}
INF_MIN=${INF_MIN:-14}
STOP_AFTER=${STOP_AFTER:-0}
SEED=${SEED:-0}
EXTRA_VAE=${EXTRA_VAE:-}
EXTRA_INF=${EXTRA_INF:-}
STAGES=${*:-data tokenizer vae infinity export}
T=python/train

for stage in $STAGES; do
    t0=$(date +%s)
    case $stage in
    data)
        if [ -f "$DATA/sparvar_set/sprites.npz" ]; then echo "[data] $DATA/sparvar_set exists: kept"
        else $PYTHON $T/build_dataset.py --out "$DATA/sparvar_set" --seed "$SEED"; fi ;;
    tokenizer)
        if [ -f "$DATA/tokenizer/spiece.model" ]; then echo "[tokenizer] $DATA/tokenizer/spiece.model exists: kept"
        else $PYTHON $T/train_tokenizer.py --data "$DATA/sparvar_set" --out "$DATA/tokenizer"; fi ;;
    vae)
        $PYTHON $T/train_vae.py --data "$DATA/sparvar_set" --out "$DATA/runs/vae" --minutes "$VAE_MIN" \
            --stop-after "$STOP_AFTER" --seed "$SEED" --resume $EXTRA_VAE ;;
    infinity)
        $PYTHON $T/train_infinity.py --data "$DATA/sparvar_set" --tokenizer "$DATA/tokenizer/spiece.model" \
            --vae-ckpt "$DATA/runs/vae/ckpt.pt" --out "$DATA/runs/infinity" --minutes "$INF_MIN" \
            --stop-after "$STOP_AFTER" --seed "$SEED" --resume $EXTRA_INF ;;
    export)
        $PYTHON $T/export_model.py --vae-ckpt "$DATA/runs/vae/ckpt.pt" --infinity-ckpt "$DATA/runs/infinity/ckpt.pt" \
            --tokenizer "$DATA/tokenizer/spiece.model" --out "$DATA/export/sparvar-small" ;;
    *) echo "unknown stage $stage (data tokenizer vae infinity export)"; exit 2 ;;
    esac
    echo "[$stage] $(( $(date +%s) - t0 )) s"
done
cat <<MSG
outputs:
  dataset      $DATA/sparvar_set/ (sprites.npz, captions.json, heldout_prompts.txt, preview_heldout.png)
  tokenizer    $DATA/tokenizer/spiece.model
  VAE          $DATA/runs/vae/ (ckpt.pt, vae_log.csv, vae_loss.png, vae_recon.png)
  transformer  $DATA/runs/infinity/ (ckpt.pt, infinity_log.csv, infinity_loss.png, samples_heldout.png)
  export       $DATA/export/sparvar-small/ (manifest.json, infinity.safetensors, vae.pth, t5/)
MSG
