#!/usr/bin/env bash
# The main job on a fresh machine: install, emit 20,000 e-commerce sessions as fast as possible into
# out.jsonl (no server needed), and check the stream against its workflow; the run's and the validation's
# HTML reports go beside it (out-run.html, out-validation.html). Extra arguments go to `emitter run`.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
out="${OUT:-out.jsonl}"
emitter run workflows/ecommerce.yaml --seed 7 --speed max --sessions 20000 \
  --start 2026-01-01T00:00:00Z --sink "file:$out" --report "${out%.jsonl}-run.html" "$@"
emitter validate workflows/ecommerce.yaml --source "file:$out" --html "${out%.jsonl}-validation.html"
