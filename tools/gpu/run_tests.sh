#!/usr/bin/env bash
# The GPU test battery, on the GPU machine from the repository root (after tools/gpu/bundle.sh here):
#   bash tools/gpu/run_tests.sh [gtest filter for test_cuda]
# Runs the CUDA tests, then the engine, API and demo tests with PENSIEVE_TEST_DEVICE=cuda (the same tests the
# CPU runs, on the GPU backend). Logs go to $OUT (or /tmp) and a summary line per suite to stdout.
set -uo pipefail
source tools/gpu/env.sh
out=${OUT:-/tmp}
filter=${1:-*}
nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader
summary() { grep -E "^\[  (PASSED|FAILED)  \]|tests? ran|SKIPPED \]" "$1" | sed "s|^|$2: |" | head -20; }
.dev/test_cuda --gtest_filter="$filter" > "$out/cuda.log" 2>&1; summary "$out/cuda.log" cuda
grep -E "^\[ (golden|gpu|sampler|demo gpu) " "$out/cuda.log" | head -80
if [ "$filter" = "*" ]; then
  for t in engine api demo; do
    PENSIEVE_TEST_DEVICE=cuda .dev/test_$t > "$out/$t.log" 2>&1; summary "$out/$t.log" "$t (cuda)"
  done
fi
