#!/usr/bin/env bash
# Sanitizers and fuzzing (CI runs this after the test suite; also by hand). One clang build with AddressSanitizer
# and UndefinedBehaviorSanitizer (any report fails) of the tests of the layers that read untrusted bytes
# (formats, tokenizer, chat, api, server) and of every libFuzzer target under fuzz/. The tests run under the
# sanitizers, then each fuzz target runs FUZZ_SECONDS (default 30) from its seed corpus (every fuzz/*/corpus/<dir>/
# whose <dir> is part of the target's name; a target without one is an error), on a copy so that the repository
# is not written to. A crash stops the script;
# libFuzzer leaves the input as build/san/fuzz-out/crash-*: keep it in the corpus as a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."
b=build/san
seconds=${FUZZ_SECONDS:-30}
start=$(date +%s)
CC=clang CXX=clang++ cmake -S . -B "$b" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPENSIEVE_SANITIZE=ON \
  -DPENSIEVE_FUZZ=ON -DPENSIEVE_CUDA=OFF > /dev/null
layers="formats tokenizer chat api server"
targets=$(ninja -C "$b" -t targets all | sed -n 's/^\(fuzz\/fuzz_[a-z_]*\): .*/\1/p' | sort -u)
cmake --build "$b" -j "$(nproc)" --target $(for l in $layers; do echo "test_$l"; done) $targets
echo "sanitized: built in $(( $(date +%s) - start )) s"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
ctest --test-dir "$b" -j "$(nproc)" --timeout 900 --output-on-failure -LE clients -L "^($(echo $layers | tr ' ' '|'))\$" ||
  status=$?
# Which data-dependent tests did not run under the sanitizers (as .ci/run prints for the release suite).
sed 's/^/sanitized: /' "$b/Testing/test-data-summary.txt" 2>/dev/null || echo "sanitized: no test data summary"
[ "$status" -eq 0 ] || exit "$status"
out="$b/fuzz-out"
rm -rf "$out" && mkdir -p "$out"
for t in $targets; do
  name=${t#fuzz/fuzz_}
  corpus="$out/corpus-$name"
  mkdir -p "$corpus"
  for seed in fuzz/*/corpus/*; do
    case "$name" in *"$(basename "$seed")"*) cp -r "$seed"/. "$corpus"/ ;; esac
  done
  seeds=$(ls "$corpus" | wc -l)
  # Every target starts from real inputs (issue 14): a target without seeds would fuzz from nothing.
  [ "$seeds" -gt 0 ] || { echo "fuzz: $name has no seed corpus (fuzz/<layer>/corpus/$name/)" >&2; exit 1; }
  echo "fuzz: $name for $seconds s from $seeds seed inputs"
  (cd "$out" && "../$t" -max_total_time="$seconds" -print_final_stats=1 "corpus-$name" 2>&1 |
     grep -E "^(stat::number_of_executed_units|stat::new_units_added|==[0-9]+==ERROR|SUMMARY)" | sed "s/^/  /")
done
echo "sanitized: done in $(( $(date +%s) - start )) s"
