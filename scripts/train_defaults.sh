#!/usr/bin/env bash
# Trains the embedded default models on one GPU: the corpus and tokenizer, then the AR target,
# the AR draft and the diffusion model side by side (three processes share the GPU; each is
# bounded by its own time budget and checkpoints every minute).
# Usage: scripts/train_defaults.sh WORK_DIR   (run from the repository root)
set -u
W=${1:?work dir}
PY=${PYTHON:-python3}
mkdir -p "$W"
export TOKENIZERS_PARALLELISM=true

[ -f "$W/data/tokenizer/tokenizer.json" ] || $PY -m infill.cli train prep --out "$W/data" || exit 1

# One model: compiled first; if that fails, eager, resuming from its last checkpoint.
train() {
  local name=$1; shift
  local resume=()
  [ -f "$W/$name/checkpoint/trainer_state.json" ] && resume=(--resume "$W/$name/checkpoint")
  $PY -m infill.cli train "$@" --data "$W/data" --out "$W/$name" "${resume[@]}" --compile \
    >>"$W/$name.log" 2>&1 && return 0
  echo "compiled run of $name failed; continuing eager" >>"$W/$name.log"
  resume=()
  [ -f "$W/$name/checkpoint/trainer_state.json" ] && resume=(--resume "$W/$name/checkpoint")
  $PY -m infill.cli train "$@" --data "$W/data" --out "$W/$name" "${resume[@]}" >>"$W/$name.log" 2>&1
}

train target ar --shape target --minutes "${TARGET_MINUTES:-16}" --batch-size 64 --seq-len 1024 \
  --lr 2e-3 --workers 6 &
train draft ar --shape draft --minutes "${DRAFT_MINUTES:-8}" --batch-size 64 --seq-len 1024 \
  --lr 3e-3 --workers 3 &
train diffusion diffusion --shape diffusion --minutes "${DIFFUSION_MINUTES:-13}" --batch-size 128 \
  --seq-len 512 --lr 2e-3 --workers 4 &
wait
echo "all done"
