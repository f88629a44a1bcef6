#!/usr/bin/env bash
# Side by side on the GPU machine, in one run: llama.cpp's llama-bench (built outside the repository and
# carried as .peer/llama-bench.xz with its gguf-py in .peer/gguf-py: docs/performance.md) on random Q4_0 GGUF
# files, and `pensieve bench` on random MLX 4-bit models of the same shapes (and Llama-3-8B bf16).
# PROMPTS (default 512) lists the prompt lengths to prefill (each followed by 128 decoded tokens); SHAPES the
# model shapes. Results: $OUT/peer.md and $OUT/ours-*.json; a summary on stdout.
set -uo pipefail
source tools/gpu/env.sh
out=${OUT:-/tmp}
m=/tmp/models
mkdir -p "$m"
[ -x .peer/llama-bench ] || { xz -dc .peer/llama-bench.xz > .peer/llama-bench && chmod +x .peer/llama-bench; }
shapes=${SHAPES:-"llama-3-8b phi-4"}
for s in $shapes; do
  PYTHONPATH=.peer/gguf-py python3 bench/make_peer_gguf.py --shape "$s" --out "$m/$s-q4_0.gguf"
  .dev/pensieve random-model "$m/$s-mlx4" --shape "$s" --dtype mlx4 > /dev/null
done
prompts=${PROMPTS:-512}
for s in $shapes; do
  .peer/llama-bench -m "$m/$s-q4_0.gguf" -p "${prompts// /,}" -n 128 -fa 1 -ngl 99 -r 3 -o md 2>/dev/null | tee -a "$out/peer.md" | grep -E "pp[0-9]|tg128"
  for p in $prompts; do
    .dev/pensieve bench --model "$m/$s-mlx4" --device cuda -p "$p" -n 128 --json > "$out/ours-$s-mlx4-p$p.json"
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], 'pp%d %.0f tok/s, then tg128 %.1f tok/s, %.0f%% of %.0f GB/s' % (j['prefill_tokens'], j['prefill_tok_s'], j['decode_tok_s'], 100*j['bandwidth_share'], j['bandwidth_gb_s']))" "$out/ours-$s-mlx4-p$p.json" "pensieve $s mlx4"
  done
done
if [ -z "${SHAPES:-}" ]; then
  .dev/pensieve random-model "$m/llama-3-8b-bf16" --shape llama-3-8b --dtype bf16 > /dev/null
  .dev/pensieve bench --model "$m/llama-3-8b-bf16" --device cuda -p 512 -n 128 --json > "$out/ours-llama-3-8b-bf16.json"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('pensieve llama-3-8b bf16 pp512 %.0f tg128 %.1f tok/s, %.0f%% of %.0f GB/s' % (j['prefill_tok_s'], j['decode_tok_s'], 100*j['bandwidth_share'], j['bandwidth_gb_s']))" "$out/ours-llama-3-8b-bf16.json"
fi
