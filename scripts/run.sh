#!/usr/bin/env bash
# The newcomer's "run" command: install dependencies, build, and start Pensieve.
# Until the built-in demo model lands, this generates text from the real stories260K model in ../shared/data
# (a 260K-parameter Llama trained on TinyStories) instead of starting the server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
model=../shared/data/models/stories260K/stories260K-hf
exec ./build/release/src/pensieve generate --model "$model" --prompt-ids 1,403,407,261,378 --max-tokens 64 "$@"
