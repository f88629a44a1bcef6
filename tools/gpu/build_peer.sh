#!/usr/bin/env bash
# Builds the peer (llama.cpp's llama-bench and llama-batched-bench, CUDA for sm_90) on the GPU machine from the
# source carried as .peer/llama-src.tar.xz (a snapshot of ggerganov/llama.cpp without models, made outside the
# repository: docs/performance.md, "Getting the peer"). About 200 s on 16 cores. Leaves the binaries in .peer/
# and copies them, compressed, with gguf-py, to $OUT/peer/ so that later runs can carry them instead.
set -euo pipefail
src=/tmp/llama.cpp
mkdir -p "$src" .peer
tar xJf .peer/llama-src.tar.xz -C "$src"
cmake -S "$src" -B "$src/build" -G Ninja -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90-real -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release > /tmp/peer-configure.log
cmake --build "$src/build" -j "$(nproc)" --target llama-bench llama-batched-bench > /tmp/peer-build.log 2>&1 ||
  { tail -30 /tmp/peer-build.log; exit 1; }
cp "$src/build/bin/llama-bench" "$src/build/bin/llama-batched-bench" .peer/
rm -rf .peer/gguf-py && cp -r "$src/gguf-py" .peer/gguf-py
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/peer"
  for b in llama-bench llama-batched-bench; do xz -T0 -6 -c ".peer/$b" > "$OUT/peer/$b.xz"; done
  tar cf "$OUT/peer/gguf-py.tar" -C .peer gguf-py
fi
ls -la .peer
