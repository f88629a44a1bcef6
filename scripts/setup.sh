#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build and test Pensieve (run as root).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git
      nlohmann-json3-dev libhwy-dev libpcre2-dev libcpp-httplib-dev libcli11-dev libutf8proc-dev
      libgtest-dev libgmock-dev zlib1g-dev curl
      clang libclang-rt-14-dev)  # the sanitizer and libFuzzer build (scripts/check_sanitized.sh)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Node.js + npm for the real-client tests (Claude Code, the Anthropic and OpenAI SDKs). Machines that already
# have a newer Node (e.g. from NodeSource) keep it; a bare Debian 12 gets its own nodejs (18) and npm.
if ! command -v npm >/dev/null 2>&1; then
  echo "setup: installing nodejs npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nodejs npm
fi
