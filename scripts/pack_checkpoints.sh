#!/usr/bin/env bash
# Packs training logs and checkpoints from WORK_DIR into OUT_DIR as 15 MiB pieces (the GPU
# machine returns files of at most 16 MiB). When a second target (target_b) was trained, the
# one with the lower last held-out loss is packed as target. Unpack: cat ckpt.tar.* | tar x
set -u
W=${1:?work dir}; OUT=${2:?out dir}
mkdir -p "$OUT"
cd "$W" || exit 1
last_loss() { tail -n 1 "$1/log.jsonl" 2>/dev/null | sed -n 's/.*"heldout_loss": \([0-9.]*\).*/\1/p'; }
for f in target target_b draft diffusion; do [ -f "$f/log.jsonl" ] && echo "$f: $(tail -n 1 $f/log.jsonl)"; done
a=$(last_loss target); b=$(last_loss target_b)
if [ -n "$b" ] && [ -n "$a" ] && awk "BEGIN{exit !($b < $a)}"; then
  echo "target_b has the lower held-out loss ($b < $a): shipping it as target"
  mv target target_a && mv target_b target && mv target_a target_b
fi
paths=$(ls -d data/corpus.json data/tokenizer ./*.log */log.jsonl target/checkpoint draft/checkpoint diffusion/checkpoint 2>/dev/null)
tar -cf - $paths | split -b 15m - "$OUT/ckpt.tar."
ls -la "$OUT"
