#!/usr/bin/env bash
# Packs what a run on the GPU machine needs into .dev/bundle.tar.xz (.dev/ is ignored by git; name it in the
# device tool's `carry`): the CLI and test binaries of build/release (stripped), the Debian libraries the GPU
# machine lacks (libhwy, libutf8proc: docs/performance.md; cpp-httplib for the server tests), and the shared
# stories260K model the engine
# tests read (and the Qwen3 tokenizer their constrained-decoding tests use). Extra binaries (paths under build/release) may be named as arguments.
# On the GPU machine, from the repository root: source tools/gpu/env.sh (unpacks it and sets the paths).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo '/.dev/' >> .git/info/exclude
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib" "$stage/shared/data/models" "$stage/shared/data/tokenizers"
b=build/release
for f in src/pensieve tests/test_cuda tests/test_engine tests/test_demo tests/test_api "$@"; do
  strip -o "$stage/$(basename "$f")" "$b/$f"
done
for l in libhwy.so.1 libutf8proc.so.2 libcpp-httplib.so.0.11; do cp -L "/usr/lib/x86_64-linux-gnu/$l" "$stage/lib/"; done
data=${PENSIEVE_TEST_DATA:-../shared/data}
cp -r "$data/models/stories260K" "$stage/shared/data/models/"
cp -r "$data/tokenizers/qwen3" "$data/tokenizers/mistral-7b-v0.1" "$data/tokenizers/llama-3.1" "$stage/shared/data/tokenizers/"
mkdir -p "$stage/shared/data/chat-templates/templates"
cp "$data"/chat-templates/templates/meta-llama-Llama-3.1-8B-Instruct.jinja "$stage/shared/data/chat-templates/templates/"
rm -rf .dev && mkdir -p .dev
tar cf - -C "$stage" . | xz -T2 -6 > .dev/bundle.tar.xz
ls -la .dev/bundle.tar.xz
