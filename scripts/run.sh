#!/usr/bin/env bash
# The newcomer's "run" command: install dependencies, build, and start `pensieve serve` on the demo model built
# into the binary (Anthropic Messages + OpenAI APIs on http://127.0.0.1:7777). Extra arguments go to `serve`,
# e.g. `bash scripts/run.sh --model /path/to/hf-model-dir --port 8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
exec ./build/release/src/pensieve serve "$@"
