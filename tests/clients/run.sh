#!/usr/bin/env bash
# Runs the node client tests; exit 77 (ctest: skipped) when node or the pinned packages are missing.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null || [ ! -d node_modules/@anthropic-ai/sdk ] || [ ! -d node_modules/openai ]; then
  echo "clients: node or node_modules missing (run 'npm ci' in tests/clients); skipping"
  exit 77
fi
export PENSIEVE_TEST_DATA=${PENSIEVE_TEST_DATA:-${PENSIEVE_TEST_DATA_DEFAULT:-}}
exec node --test --test-concurrency=1 ./*.test.mjs
