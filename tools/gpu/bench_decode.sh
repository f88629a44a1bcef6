#!/usr/bin/env bash
# Batch-1 decode A/B on the GPU machine: for each variant (an argument: space-separated VAR=value settings,
# "" for the defaults), `pensieve bench-kernels` (each op alone, then whole recorded decode steps) and
# `pensieve bench -p 512 -n 128` (tg128 after a 512-token prompt) on a random Llama-3-8B MLX 4-bit model.
#   bash tools/gpu/bench_decode.sh "" "PENSIEVE_CUDA_PDL=0"
# SHAPE (default llama-3-8b) and DTYPE (default mlx4) pick the model. Full outputs under $OUT; a summary last.
set -uo pipefail
source tools/gpu/env.sh
out=${OUT:-/tmp}
shape=${SHAPE:-llama-3-8b}
dtype=${DTYPE:-mlx4}
m=/tmp/models/$shape-$dtype
[ -d "$m" ] || .dev/pensieve random-model "$m" --shape "$shape" --dtype "$dtype" > /dev/null
[ $# -gt 0 ] || set -- ""
i=0
for v in "$@"; do
  i=$((i + 1))
  env $v .dev/pensieve bench-kernels --device cuda --shape "$shape" --dtype "$dtype" --iters 100 > "$out/kernels-$i.txt" 2>&1
  env $v .dev/pensieve bench --model "$m" --device cuda -p 512 -n 128 --json > "$out/bench-$i.json" 2> "$out/bench-$i.err"
done
i=0
for v in "$@"; do
  i=$((i + 1))
  echo "== variant $i: ${v:-defaults}"
  grep -E "^(qkv|output|gate|down|lm_head|rmsnorm|sample|qk rope|attention ctx 512|whole)" "$out/kernels-$i.txt" | awk '$(NF-3) == 1 || /whole/' | head -14
  grep -A0 "tok/s" "$out/kernels-$i.txt" | tail -2
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('bench: pp512 %.0f tok/s, tg128 %.1f tok/s, %.0f%% of %.0f GB/s' % (j['prefill_tok_s'], j['decode_tok_s'], 100*j['bandwidth_share'], j['bandwidth_gb_s']))" "$out/bench-$i.json" || tail -3 "$out/bench-$i.err"
done
