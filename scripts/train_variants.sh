#!/usr/bin/env bash
# Trains variants of one shipped model (the AR target, or the diffusion model) side by side,
# then measures each on held-out single-line infill, so a recipe is chosen by measurement. All
# variants share the GPUs round-robin (one GPU: all on it). Each starts from START_FROM/ROLE
# (START_FROM=none: from scratch), or resumes its own checkpoint in W.
# Usage: scripts/train_variants.sh W TOKENIZER_DIR NAME "FLAGS" [NAME "FLAGS" ...]
#   (from the repository root; FLAGS are `infill train ar|diffusion` options, e.g.
#   "--pack --package-alpha 0.5", or "--surplus engine" for the diffusion model)
# Env: ROLE (target or diffusion, default target), MINUTES (schedule length, default 16),
#      STOP_AFTER (minutes of this run, default all), START_FROM (default
#      infill/models/default; none: random init), SHAPE (default: the role's shipped shape),
#      TASKS (held-out tasks, default 300; 0: skip the held-out runs, e.g. in a run that stops
#      early to resume in the next device call), WORKERS (data workers per variant, default 4),
#      EXTRA_ROOT (a folder of more packages for the corpus, from scripts/extra_corpus.sh)
# Prints per variant the last log line and the held-out exact match; W/best names the variant
# with the lowest held-out loss on the gaps (target) or the highest exact match (diffusion,
# whose held-out rows keep the shipped recipe's gap padding, which a variant may change).
set -u
W=${1:?work dir}; TOKENIZER=${2:?tokenizer dir}; shift 2
PY=${PYTHON:-python3}
ROLE=${ROLE:-target}
START_FROM=${START_FROM:-infill/models/default}
case "$ROLE" in
  target) kind=ar; engine=speculative; rows=(--batch-size 128 --seq-len 1024) ;;
  diffusion) kind=diffusion; engine=diffusion; rows=(--batch-size 128 --seq-len 512) ;;
  *) echo "ROLE must be target or diffusion" >&2; exit 2 ;;
esac
GPUS=$(nvidia-smi -L 2>/dev/null | wc -l); [ "$GPUS" -ge 1 ] || GPUS=1
mkdir -p "$W"
if [ ! -f "$W/data/tokenizer/tokenizer.json" ]; then
  $PY -m infill.cli train prep --out "$W/data" --tokenizer "$TOKENIZER" \
    ${EXTRA_ROOT:+--extra-root "$EXTRA_ROOT"} || exit 1
fi

names=(); i=0
while [ $# -ge 2 ]; do
  name=$1 flags=$2; shift 2; names+=("$name")
  start=(--resume "$START_FROM/$ROLE")
  [ "$START_FROM" = none ] && start=()
  [ -f "$W/$name/checkpoint/trainer_state.json" ] && start=(--resume "$W/$name/checkpoint")
  # shellcheck disable=SC2086  # FLAGS is a list of options
  CUDA_VISIBLE_DEVICES=$((i % GPUS)) $PY -m infill.cli train "$kind" --shape "${SHAPE:-$ROLE}" \
    --data "$W/data" --out "$W/$name" ${start[@]+"${start[@]}"} --minutes "${MINUTES:-16}" \
    ${STOP_AFTER:+--stop-after "$STOP_AFTER"} "${rows[@]}" --workers "${WORKERS:-4}" \
    --eval-every 45 $flags >>"$W/$name.log" 2>&1 &
  i=$((i + 1))
done
wait
[ "${TASKS:-300}" = 0 ] && { for name in "${names[@]}"; do echo "$name: $(tail -n 1 "$W/$name/log.jsonl")"; done; exit 0; }

for name in "${names[@]}"; do  # a checkpoint folder loads like a shipped model folder
  mkdir -p "$W/eval-$name" && ln -sfn "$(realpath "$W/$name/checkpoint")" "$W/eval-$name/$ROLE"
  $PY -m infill.cli train heldout --data "$W/data" --models "$W/eval-$name" --engine "$engine" \
    --tasks "${TASKS:-300}" --json "$W/$name/heldout.json" >"$W/$name.heldout.log" 2>&1 &
done
wait

best=""; best_score=""
for name in "${names[@]}"; do
  last=$(tail -n 1 "$W/$name/log.jsonl")
  echo "$name: $last"
  echo "$name: $(tr -d '\n ' < "$W/$name/heldout.json" 2>/dev/null || tail -n 3 "$W/$name.heldout.log")"
  if [ "$ROLE" = target ]; then  # lower is better: negate
    score=$(echo "$last" | sed -n 's/.*"heldout_middle_loss": \([0-9.]*\).*/-\1/p')
  else
    score=$(tr -d '\n ' < "$W/$name/heldout.json" 2>/dev/null | sed -n 's/.*"exact_match":\([0-9.e-]*\).*/\1/p')
  fi
  if [ -n "$score" ] && { [ -z "$best_score" ] || awk "BEGIN{exit !($score > $best_score)}"; }; then
    best=$name; best_score=$score
  fi
done
echo "$best" > "$W/best"
echo "best: $best (score $best_score: minus the held-out loss on the gaps, or the exact match)"
