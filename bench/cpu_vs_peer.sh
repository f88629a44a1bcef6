#!/usr/bin/env bash
# CPU speed side by side with llama.cpp, alternating in one run (docs/performance.md: the shared VM is noisy, so
# only ratios measured together mean anything). Each round runs the peer on the GGUF file, then Pensieve on
# the same GGUF file and on each model directory given, all with the same prompt/generation lengths and threads.
#
#   bench/cpu_vs_peer.sh LLAMA_BENCH FILE.gguf [MODEL_DIR ...]
#   env: ROUNDS (3), P (128), N (32), THREADS (2), PENSIEVE (build/release/src/pensieve), EXTRA_ENV (e.g.
#        "PENSIEVE_CPU_INT8=0" to time the float kernels in the same run as well)
# Prints one line per engine and round: engine, model, prefill tok/s, decode tok/s.
set -euo pipefail
peer=$1; gguf=$2; shift 2
ROUNDS=${ROUNDS:-3} P=${P:-128} N=${N:-32} THREADS=${THREADS:-2}
PENSIEVE=${PENSIEVE:-build/release/src/pensieve}

ours() {  # env-prefix model label
  local out
  out=$(env $1 "$PENSIEVE" bench --model "$2" -p "$P" -n "$N" --threads "$THREADS" --json)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("%-10s %-28s prefill %8.1f  decode %7.2f  (%s GB/s measured)" % (sys.argv[2], sys.argv[3], j["prefill_tok_s"], j["decode_tok_s"], j.get("bandwidth_gb_s", "?")))' \
    "$out" "${4:-pensieve}" "$3"
}

for r in $(seq "$ROUNDS"); do
  echo "# round $r ($(date -u +%H:%M:%S))"
  "$peer" -m "$gguf" -p "$P" -n "$N" -t "$THREADS" -o csv 2>/dev/null | python3 -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
pp = [float(r["avg_ts"]) for r in rows if int(r["n_prompt"]) > 0]
tg = [float(r["avg_ts"]) for r in rows if int(r["n_gen"]) > 0]
print("%-10s %-28s prefill %8.1f  decode %7.2f" % ("llama.cpp", sys.argv[1], pp[0], tg[0]))' "$(basename "$gguf")"
  ours "" "$gguf" "$(basename "$gguf")"
  for m in "$@"; do
    ours "" "$m" "$(basename "$m")"
    if [ -n "${EXTRA_ENV:-}" ]; then ours "$EXTRA_ENV" "$m" "$(basename "$m")" "${EXTRA_ENV}"; fi
  done
done
