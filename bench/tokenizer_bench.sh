#!/usr/bin/env bash
# Single-threaded tokenization throughput (MB/s) of `pensieve tokenize --bench` on English prose and on code.
# Inputs are built deterministically: prose = ../shared BRIEF.md + docs/*.md (Markdown prose, ~74 KB);
# code = the C++ sources under src/ tracked at the current commit (sorted by path). Each measurement encodes
# the whole input repeatedly for SECONDS after one warm-up pass (the BPE word cache is warm, as in a server).
# Usage: bench/tokenizer_bench.sh [PENSIEVE_BINARY] [SECONDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/build/release/src/pensieve}
secs=${2:-3}
shared=${PENSIEVE_SHARED_DIR:-$root/../shared}  # BRIEF.md and docs/ for the prose input
data=${PENSIEVE_TEST_DATA:-$shared/data}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat "$shared/BRIEF.md" "$shared"/docs/*.md > "$tmp/prose.txt"
(cd "$root" && git ls-files 'src/*.cpp' 'src/*.h' | sort | xargs cat) > "$tmp/code.txt"
echo "commit $(git -C "$root" rev-parse --short HEAD); $(date -u +%Y-%m-%dT%H:%MZ); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "prose $(wc -c < "$tmp/prose.txt") bytes (sha256 $(sha256sum "$tmp/prose.txt" | cut -c1-12)), code $(wc -c < "$tmp/code.txt") bytes"
for model in tokenizers/llama-3.1 tokenizers/qwen3 tokenizers/mistral-7b-v0.1 vocab/ggml-vocab-gpt-2.gguf; do
  for input in prose code; do
    printf '%-32s %-5s ' "$model" "$input"
    taskset -c 0 "$bin" tokenize --model "$data/$model" --no-add-special --file "$tmp/$input.txt" --bench "$secs"
  done
done
