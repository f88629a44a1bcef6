#!/usr/bin/env bash
# Throughput with many sequences at once, side by side on the GPU machine, in one run: llama.cpp's
# llama-batched-bench (carried as .peer/llama-batched-bench.xz: tools/gpu/build_peer.sh) on a random Q4_0 GGUF
# and `pensieve bench --parallel` on a random MLX 4-bit model of the same shape; each sequence gets its own
# prompt of PP tokens and generates TG. SHAPE (default llama-3-8b), PP (512), TG (128), NPL (1,8,64).
# Results: $OUT/batched-peer.txt, $OUT/batched-ours.txt; both tables on stdout.
set -uo pipefail
source tools/gpu/env.sh
out=${OUT:-/tmp}
m=/tmp/models
s=${SHAPE:-llama-3-8b} pp=${PP:-512} tg=${TG:-128} npl=${NPL:-1,8,64}
mkdir -p "$m"
[ -x .peer/llama-batched-bench ] || { xz -dc .peer/llama-batched-bench.xz > .peer/llama-batched-bench && chmod +x .peer/llama-batched-bench; }
[ -f "$m/$s-q4_0.gguf" ] || PYTHONPATH=.peer/gguf-py python3 bench/make_peer_gguf.py --shape "$s" --out "$m/$s-q4_0.gguf"
[ -d "$m/$s-mlx4" ] || .dev/pensieve random-model "$m/$s-mlx4" --shape "$s" --dtype mlx4 > /dev/null
most=$(echo "$npl" | tr ',' '\n' | sort -n | tail -1)
ctx=$(( most * (pp + tg) + 256 ))
.peer/llama-batched-bench -m "$m/$s-q4_0.gguf" -c "$ctx" -b 2048 -ub 512 -npp "$pp" -ntg "$tg" -npl "$npl" -fa -ngl 99 \
  2>/dev/null | grep -E "^\|" | tee "$out/batched-peer.txt"
.dev/pensieve bench --model "$m/$s-mlx4" --device cuda -p "$pp" -n "$tg" --parallel "$npl" | tee "$out/batched-ours.txt"
