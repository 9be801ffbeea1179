#!/usr/bin/env bash
# Packs training logs and checkpoints from WORK_DIR into OUT_DIR as 15 MiB pieces (the GPU
# machine returns files of at most 16 MiB). Unpack with: cat ckpt.tar.* | tar x
set -u
W=${1:?work dir}; OUT=${2:?out dir}
mkdir -p "$OUT"
cd "$W" || exit 1
for f in target draft diffusion; do [ -f "$f/log.jsonl" ] && tail -n 2 "$f/log.jsonl"; done
paths=$(ls -d data/corpus.json data/tokenizer ./*.log */log.jsonl */checkpoint 2>/dev/null)
tar -cf - $paths | split -b 15m - "$OUT/ckpt.tar."
ls -la "$OUT"
