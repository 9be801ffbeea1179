#!/usr/bin/env bash
# Trains the embedded default models: the corpus split and tokenizer, then the AR target, the
# AR draft and the diffusion model side by side, each bounded by its own time budget and
# checkpointing every minute. With several GPUs each model gets its own (a fourth GPU trains a
# second target with a larger batch; the better held-out loss is kept by pack_checkpoints.sh).
# Usage: scripts/train_defaults.sh WORK_DIR [TOKENIZER_DIR]   (from the repository root)
set -u
W=${1:?work dir}
TOKENIZER=${2:-}
PY=${PYTHON:-python3}
mkdir -p "$W"
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l)
[ "$GPUS" -ge 1 ] || GPUS=1
gpu() { echo $(( $1 < GPUS ? $1 : GPUS - 1 )); }

if [ ! -f "$W/data/tokenizer/tokenizer.json" ]; then
  $PY -m infill.cli train prep --out "$W/data" ${TOKENIZER:+--tokenizer "$TOKENIZER"} || exit 1
fi

# One model; resumes from its own checkpoint when one exists.
train() {
  local name=$1 device=$2; shift 2
  local resume=()
  [ -f "$W/$name/checkpoint/trainer_state.json" ] && resume=(--resume "$W/$name/checkpoint")
  CUDA_VISIBLE_DEVICES=$device $PY -m infill.cli train "$@" --data "$W/data" --out "$W/$name" \
    "${resume[@]}" >>"$W/$name.log" 2>&1
}

M=${MINUTES:-6}
train target "$(gpu 0)" ar --shape target --minutes "$M" --batch-size 64 --seq-len 1024 \
  --lr 2e-3 --workers 8 --eval-every 45 &
train diffusion "$(gpu 1)" diffusion --shape diffusion --minutes "$M" --batch-size 128 \
  --seq-len 512 --lr 2e-3 --workers 6 --eval-every 45 &
train draft "$(gpu 2)" ar --shape draft --minutes "$M" --batch-size 64 --seq-len 1024 \
  --lr 3e-3 --workers 4 --eval-every 45 &
if [ "$GPUS" -ge 4 ]; then
  train target_b 3 ar --shape target --minutes "$M" --batch-size 128 --seq-len 1024 \
    --lr 3e-3 --workers 8 --eval-every 45 &
fi
wait
echo "all done"
