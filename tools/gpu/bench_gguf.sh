#!/usr/bin/env bash
# GGUF files on the GPU machine (after tools/gpu/bundle.sh, with .peer/llama-src.tar.xz carried for gguf-py): the
# stories260K GGUF tests of test_cuda, then random Llama-3-8B-shape Q4_0 / Q8_0 GGUF files against MLX 4 / 8-bit
# folders, `pensieve bench -p 512 -n 128` each (bench/RESULTS_cuda.md, "GGUF files on the GPU").
set -u
source tools/gpu/env.sh
.dev/test_cuda --gtest_filter='CudaStories*:CudaGolden*' 2>&1 | grep -E "OK \]|FAILED|PASSED|Failure" | head -12
mkdir -p /tmp/llama.cpp && tar xJf .peer/llama-src.tar.xz -C /tmp/llama.cpp
python3 -c "import sentencepiece" 2>/dev/null || { mkdir -p /tmp/pystub; echo "class SentencePieceProcessor: pass" > /tmp/pystub/sentencepiece.py; export PYTHONPATH=/tmp/pystub; }
export PYTHONPATH=/tmp/llama.cpp/gguf-py:${PYTHONPATH:-}
mkdir -p /tmp/m
( python3 bench/make_peer_gguf.py --shape llama-3-8b --out /tmp/m/q4_0.gguf > /tmp/m/g1.log 2>&1 ) &
( python3 bench/make_peer_gguf.py --shape llama-3-8b --type q8_0 --out /tmp/m/q8_0.gguf > /tmp/m/g2.log 2>&1 ) &
.dev/pensieve random-model /tmp/m/mlx4 --shape llama-3-8b --dtype mlx4 > /dev/null
.dev/pensieve random-model /tmp/m/mlx8 --shape llama-3-8b --dtype mlx8 > /dev/null
wait; tail -n 1 /tmp/m/g1.log /tmp/m/g2.log
for m in mlx4 q4_0.gguf mlx8 q8_0.gguf; do
  s=$(date +%s)
  .dev/pensieve bench --model /tmp/m/$m --device cuda -p 512 -n 128 --json > /tmp/m/$m.json 2> /tmp/m/$m.err
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], 'pp512 %.0f tok/s, tg128 %.1f tok/s, %.0f%% of %.0f GB/s' % (j['prefill_tok_s'], j['decode_tok_s'], 100*j['bandwidth_share'], j['bandwidth_gb_s']))" /tmp/m/$m.json $m || tail -3 /tmp/m/$m.err
  echo "  wall $(( $(date +%s) - s )) s"
done
