#!/usr/bin/env bash
# Trains the embedded default models: the corpus split and tokenizer, then the AR target, the
# AR draft and the diffusion model side by side, each bounded by its own time budget and
# checkpointing every 45 s.
# GPUs: with 4 or more, the target trains data-parallel (torchrun) on all but the last GPU and
# the diffusion model and the draft share the last one; with 2-3, one model per GPU; with 1,
# all three share it.
# Usage: scripts/train_defaults.sh WORK_DIR [TOKENIZER_DIR]   (from the repository root)
# Env: MINUTES (per model, default 6); START_FROM=DIR continues from the models in DIR
# (e.g. infill/models/default) with a fresh schedule instead of random weights; EXTRA_ROOT, a
# folder of more packages for the corpus (scripts/extra_corpus.sh).
# Recipes: the measured winners of MODELS.md (target: packages ^0.5, packed rows, gap loss x3,
# renaming; diffusion: the engine's gap padding); the draft keeps the first run's.
set -u
W=${1:?work dir}
TOKENIZER=${2:-}
PY=${PYTHON:-python3}
M=${MINUTES:-6}
mkdir -p "$W"
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$GPUS" -ge 1 ] || GPUS=1
gpu() { echo $(( $1 < GPUS ? $1 : GPUS - 1 )); }

if [ ! -f "$W/data/tokenizer/tokenizer.json" ]; then
  $PY -m infill.cli train prep --out "$W/data" ${TOKENIZER:+--tokenizer "$TOKENIZER"} \
    ${EXTRA_ROOT:+--extra-root "$EXTRA_ROOT"} || exit 1
fi

# train NAME GPUS ARGS...: one model on the listed GPUs (several: torchrun, one replica each);
# resumes from its own checkpoint, else starts from START_FROM/NAME when given.
train() {
  local name=$1 devices=$2; shift 2
  local start=()
  if [ -f "$W/$name/checkpoint/trainer_state.json" ]; then
    start=(--resume "$W/$name/checkpoint")
  elif [ -n "${START_FROM:-}" ] && [ -f "$START_FROM/$name/config.json" ]; then
    start=(--resume "$START_FROM/$name")
  fi
  local n; n=$(echo "$devices" | tr ',' '\n' | wc -l)
  local launch=($PY)
  [ "$n" -gt 1 ] && launch=($PY -m torch.distributed.run --nproc_per_node "$n" --master_port $((29500 + RANDOM % 500)))
  CUDA_VISIBLE_DEVICES=$devices "${launch[@]}" -m infill.cli train "$@" --data "$W/data" \
    --out "$W/$name" "${start[@]}" >>"$W/$name.log" 2>&1
}

if [ "$GPUS" -ge 4 ]; then
  TARGET_GPUS=$(seq -s, 0 $((GPUS - 2))); LAST=$((GPUS - 1))
  DIFF_GPU=$LAST; DRAFT_GPU=$LAST
else
  TARGET_GPUS=$(gpu 0); DIFF_GPU=$(gpu 1); DRAFT_GPU=$(gpu 2)
fi
train target "$TARGET_GPUS" ar --shape target --minutes "$M" --batch-size 128 --seq-len 1024 \
  --lr 3e-3 --workers 8 --eval-every 45 --pack --package-alpha 0.5 --middle-weight 3 \
  --rename-rate 0.5 &
train diffusion "$DIFF_GPU" diffusion --shape diffusion --minutes "$M" --batch-size 128 \
  --seq-len 512 --lr 2e-3 --workers 6 --eval-every 45 --surplus engine &
train draft "$DRAFT_GPU" ar --shape draft --minutes "$M" --batch-size 64 --seq-len 1024 \
  --lr 3e-3 --workers 4 --eval-every 45 &
wait
echo "all done"
