#!/usr/bin/env bash
# `pensieve serve --device cuda` as a user starts it (default prefill chunk, KV pool sized from free memory,
# warm-up), on a random Llama-3-8B-shaped MLX 4-bit model with the Llama-3.1 tokenizer, then real HTTP traffic:
# Anthropic and OpenAI requests (plain and streamed), a Claude Code-shaped first turn of about 19k tokens, its
# follow-up and 8 such sessions at once (tools/gpu/claude_code_replay.py: time to first token of each turn),
# N concurrent streams, malformed requests (each must get the error envelope) and a last request to show the
# server still serves. Writes $OUT/serve.log and
# $OUT/serve-smoke.txt; exits non-zero on the first failed check.
set -uo pipefail
source tools/gpu/env.sh
out=${OUT:-/tmp}
m=/tmp/models/llama-3-8b-mlx4-instruct
port=18080
n=${N:-16}
# The tokenizer files' own template is Llama 3's base one (no tools); Claude Code's requests want the Instruct
# template, which renders the tool schemas.
if [ ! -d "$m" ]; then
  .dev/pensieve random-model "$m" --shape llama-3-8b --dtype mlx4 \
    --ctx 32768 --tokenizer "$PENSIEVE_TEST_DATA/tokenizers/llama-3.1" > /dev/null || exit 1
  python3 - "$m/tokenizer_config.json" \
    "$PENSIEVE_TEST_DATA/chat-templates/templates/meta-llama-Llama-3.1-8B-Instruct.jinja" <<'EOF' || exit 1
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = open(sys.argv[2]).read()
json.dump(c, open(sys.argv[1], "w"))
EOF
fi
.dev/pensieve serve --model "$m" --device cuda --port "$port" > "$out/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
exec > >(tee "$out/serve-smoke.txt") 2>&1
since() { python3 -c "import time; print(round(time.time() - $1, 2))"; }
start=$(date +%s.%N)
until curl -sf "localhost:$port/v1/models" > /dev/null; do
  kill -0 $pid 2>/dev/null || { echo "FAIL: serve exited"; tail -20 "$out/serve.log"; exit 1; }
  sleep 0.5
done
echo "ready after $(since "$start") s (load + warm-up)"
nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader | sed 's/^/gpu memory used, total: /'

fail() { echo "FAIL: $*"; tail -20 "$out/serve.log"; exit 1; }
post() { curl -s -o /tmp/body -w '%{http_code} %{time_starttransfer} %{time_total}' "localhost:$port$1" \
  -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -d "$2"; }

r=$(post /v1/messages '{"model":"m","max_tokens":32,"messages":[{"role":"user","content":"Say hello."}]}')
echo "anthropic: $r $(head -c 300 /tmp/body)"
[[ $r == 200* ]] && grep -q '"type":"message"' /tmp/body || fail "anthropic request"
r=$(post /v1/messages '{"model":"m","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"Count."}]}')
echo "anthropic stream: $r, $(grep -c '^event:' /tmp/body) events, last: $(grep '^event:' /tmp/body | tail -1)"
grep -q 'event: message_stop' /tmp/body || fail "anthropic stream"
r=$(post /v1/chat/completions '{"model":"m","max_tokens":32,"stream":true,"messages":[{"role":"user","content":"Hi"}]}')
echo "openai stream: $r, $(grep -c '^data:' /tmp/body) chunks, last: $(grep '^data:' /tmp/body | tail -1)"
grep -q 'data: \[DONE\]' /tmp/body || fail "openai stream"

# Claude Code's first turn: the real request when a capture is carried (CAPTURE, default
# .captures/claude-code.jsonl, written by tools/capture_requests.py in front of a server that the pinned CLI
# talked to; kept out of the repository: it is the CLI's own prompt), else the synthetic Claude Code-shaped
# prompt of tests/fixtures/demo (the billing line as its own system block, the text repeated to ~19k tokens).
capture=${CAPTURE:-.captures/claude-code.jsonl}
python3 - "$capture" > /tmp/cc.json <<'EOF'
import gzip, json, os, sys
if os.path.exists(sys.argv[1]):
    rows = [json.loads(l) for l in open(sys.argv[1])]
    body = max((r["body"] for r in rows if r["path"].startswith("/v1/messages")), key=lambda b: len(b.get("tools", [])))
    print(json.dumps(body))
    print("replaying the captured request:", len(body.get("tools", [])), "tools", file=sys.stderr)
    sys.exit(0)
row = json.loads(gzip.open("tests/fixtures/demo/claude_code_shaped.jsonl.gz", "rt").readline())
system = "\n\n".join(m["content"] for m in row["messages"] if m["role"] == "system")
billing, _, text = system.partition("\n\n")
tools = [{"name": t["function"]["name"], "description": t["function"]["description"],
          "input_schema": t["function"]["parameters"]} for t in row["tools"]]
user = next(m["content"] for m in row["messages"] if m["role"] == "user")
blocks = [{"type": "text", "text": t} for t in (billing, text, text, text[:16000])]
print(json.dumps({"model": "m", "max_tokens": 16, "stream": True, "system": blocks, "tools": tools,
                  "messages": [{"role": "user", "content": user}]}))
print("replaying the synthetic request", file=sys.stderr)
EOF
python3 tools/gpu/claude_code_replay.py "$port" /tmp/cc.json --sessions 8 --max-tokens 64 || fail "claude code replay"

# n concurrent streams of 128 tokens each.
t0=$(date +%s.%N)
for i in $(seq "$n"); do
  curl -s "localhost:$port/v1/messages" -H 'content-type: application/json' \
    -d "{\"model\":\"m\",\"max_tokens\":128,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Story $i\"}]}" \
    > "/tmp/c$i" &
done
wait $(jobs -p | grep -v "^$pid$") 2>/dev/null
elapsed=$(since "$t0")
ok=0 tokens=0
for i in $(seq "$n"); do
  grep -q 'event: message_stop' "/tmp/c$i" && ok=$((ok + 1))
  tokens=$((tokens + $(grep -o '"output_tokens":[0-9]*' "/tmp/c$i" | tail -1 | cut -d: -f2)))
done
echo "$n concurrent streams: $ok complete, $tokens output tokens in $elapsed s"
[ "$ok" = "$n" ] || fail "concurrent streams"

# Malformed requests: the error envelope each time, and the server keeps serving.
for body in '{' '{"model":"m","messages":[]}' '{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}' \
  '{"model":"m","max_tokens":8,"messages":[{"role":"user","content":[{"type":"image"}]}]}'; do
  r=$(post /v1/messages "$body")
  echo "malformed -> $r $(head -c 160 /tmp/body)"
  [[ $r == 4* ]] && grep -q '"type":"error"' /tmp/body || fail "malformed request: $body"
done
r=$(post /v1/messages '{"model":"m","max_tokens":8,"messages":[{"role":"user","content":"Still there?"}]}')
[[ $r == 200* ]] || fail "request after the malformed ones"
kill -0 $pid || fail "serve died"
echo "server log (tail):"
tail -5 "$out/serve.log"
echo "PASS"
