#!/usr/bin/env bash
# Every GPU benchmark of BENCHMARKS.md in one device call on one GPU (about 8 minutes), from the
# repository root. Results: OUT/results.tar (logs and JSON of each step, trace reports).
# The GPU image lacks some packages: WHEELS (default .work/gpu-wheels) holds Python 3.12 wheels
# of pygls, lsprotocol, cattrs, attrs, typing-extensions, tree-sitter, tree-sitter-python and
# rapidfuzz (`pip download --no-deps --only-binary=:all: --python-version 3.12 ...`, see
# ../.library/device/README.md); SAFIM (default .work/batch-gpu/safim) holds SAFIM's Python rows.
# Env: LIMIT seconds per step (default 150), KEYS keystrokes per trace (default 100), SKIP step
# names to leave out (e.g. "diffusion steps"), REQUESTS and PASSES for the speculative bench
# (default 40 and 1), COMPILE_LIMIT seconds for the compiled-steps step (default 240).
set -u
OUT=${1:?out dir}
WHEELS=${WHEELS:-.work/gpu-wheels}
SAFIM=${SAFIM:-.work/batch-gpu/safim}
R=/tmp/gpu-bench
mkdir -p "$R" "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$WHEELS"/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

# step NAME COMMAND...: runs one benchmark with a time limit; a failure does not stop the others
step() {
  local name=$1; shift
  case " ${SKIP:-} " in *" $name "*) echo "== $name: skipped"; return;; esac
  echo "== $name: $*"
  timeout "${LIMIT:-150}" "$@" >"$R/$name.log" 2>&1
  echo "== $name: exit $?"
  tail -n 30 "$R/$name.log"
}

step speculative python3 -m infill.cli bench speculative --device cuda --requests "${REQUESTS:-40}" \
  --passes "${PASSES:-1}" --json "$R/speculative.json"
step steps python3 -m infill.bench.speculative --device cuda --no-completions --shapes 1.5b,7b \
  --json "$R/steps.json"
# the same with compiled decode/verify steps: compiles take minutes, so one shape, more time
LIMIT=${COMPILE_LIMIT:-240} step steps-compiled python3 -m infill.bench.speculative --device cuda \
  --no-completions --shapes 1.5b --compile-steps --reps 10 --json "$R/steps-compiled.json"
step profile python3 scripts/profile_steps.py --shapes 1.5b --shipped --json "$R/profile.json"
step diffusion python3 -m infill.cli bench diffusion --device cuda --safim "$SAFIM" --json "$R/diffusion.json"
step batch python3 -m infill.cli bench batch "$SAFIM" --rows 128 --batch-sizes 8,32,64 --device cuda \
  --max-tokens 64 --json "$R/batch.json"
step lsp python3 -m lsp_server.bench --models --device cuda --out "$R/lsp.json"

# editor traces from the held-out packages as installed on this machine
files=$(python3 -c "import click, jinja2, os; print(os.path.dirname(click.__file__) + '/utils.py', os.path.dirname(jinja2.__file__) + '/utils.py')")
for speed in 60 120 250; do
  for mode in type edit; do
    # shellcheck disable=SC2086  # two file names
    python3 -m infill.cli trace make $files -o "$R/$mode-$speed.jsonl" --mode "$mode" \
      --keys "${KEYS:-100}" --edits 2 --speed "$speed" --seed 0 >"$R/make-$mode-$speed.log" 2>&1
    step "replay-$mode-$speed" python3 -m infill.cli trace replay "$R/$mode-$speed.jsonl" \
      --report "$R/replay-$mode-$speed" --options '{"device": "cuda"}'
  done
done

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$R/gpu.txt" 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)" >>"$R/gpu.txt"
tar -C /tmp -cf "$OUT/results.tar" gpu-bench
ls -la "$OUT"
