#!/usr/bin/env bash
# Full held-out evaluation of the demo model through our engine: all 500 prompts of
# tests/fixtures/demo/heldout.jsonl.gz for models/demo (bf16) and models/demo-mlx4 (4-bit), plus the 50 greedy-id
# comparisons with transformers. (CI runs a fixed 250-prompt subset per model: every 2nd.) Record the printed lines in
# bench/RESULTS.md with the date and machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset release >/dev/null
cmake --build --preset release --target test_demo -j 2
PENSIEVE_DEMO_HELDOUT=all ./build/release/tests/test_demo --gtest_filter='DemoModel.*'
