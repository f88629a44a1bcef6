#!/usr/bin/env python3
"""Claude Code-shaped traffic against a running `pensieve serve`, timed as a user feels it.

Usage: claude_code_replay.py PORT REQUEST.json [--sessions N] [--max-tokens M]

REQUEST.json is a first turn (Anthropic Messages body, streamed). The script sends it cold, then the follow-up
turn Claude Code would send (the same prefix plus the model's tool call and its result), then N sessions at
once, each a first turn whose user message ends in its own text (so they share the prefix up to there, as
sessions of one CLI version in one project do) followed by its follow-up. For every turn it prints the time to
the first token (the first content_block_delta event), the prompt tokens, how many came from the prefix cache
(from the server's usage), the output tokens and the total time; then the aggregate decode rate of the
concurrent phase. Exits 1 when a request fails. Standard library only (the GPU machine has no extra packages).
"""
import copy
import http.client
import json
import sys
import threading
import time


def turn(port, body):
    """Sends one streamed request; returns (ttft_s, total_s, usage) or raises."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.time()
    conn.request("POST", "/v1/messages", json.dumps(body),
                 {"content-type": "application/json", "anthropic-version": "2023-06-01"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"HTTP {resp.status}: {resp.read()[:300]!r}")
    ttft, usage, event = None, {}, None
    for raw in resp:
        line = raw.decode("utf-8").rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
            if event == "content_block_delta" and ttft is None:
                ttft = time.time() - t0
        elif line.startswith("data: "):
            data = json.loads(line[6:])
            if event == "message_start":
                usage.update(data["message"]["usage"])
            elif event == "message_delta":
                usage.update(data.get("usage", {}))
            elif event == "error":
                raise RuntimeError(f"stream error: {data}")
    conn.close()
    return ttft if ttft is not None else float("nan"), time.time() - t0, usage


def follow_up(first, n):
    """The turn after `first`: the model called Bash, the tool answered."""
    body = copy.deepcopy(first)
    tool_id = f"toolu_replay_{n:04d}"
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "Bash",
                                           "input": {"command": "ls", "description": "List files"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id,
                                      "content": "README.md\nsrc\ntests\n"}]},
    ]
    return body


def show(name, result):
    ttft, total, u = result
    cached = u.get("cache_read_input_tokens", 0)
    prompt = u.get("input_tokens", 0) + cached + u.get("cache_creation_input_tokens", 0)
    print(f"{name:<28} ttft {ttft * 1000:8.1f} ms  prompt {prompt:6d} tokens ({cached:6d} cached)  "
          f"out {u.get('output_tokens', 0):4d}  total {total * 1000:8.1f} ms", flush=True)


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    sessions = int(sys.argv[sys.argv.index("--sessions") + 1]) if "--sessions" in sys.argv else 8
    max_tokens = int(sys.argv[sys.argv.index("--max-tokens") + 1]) if "--max-tokens" in sys.argv else 64
    first = json.load(open(path))
    first["stream"] = True
    first["max_tokens"] = max_tokens

    cold = turn(port, first)
    show("first turn, cold", cold)
    warm = turn(port, follow_up(first, 0))
    show("follow-up (tool result)", warm)
    print(f"follow-up ttft / cold ttft: {warm[0] / cold[0] * 100:.1f} %")

    results = {}

    def session(i):
        body = copy.deepcopy(first)
        last = body["messages"][-1]
        mark = f"(session {i})"
        if isinstance(last["content"], list):  # Claude Code sends blocks: one more text block at the end
            last["content"].append({"type": "text", "text": mark})
        else:
            last["content"] += " " + mark
        try:
            results[(i, 0)] = turn(port, body)
            results[(i, 1)] = turn(port, follow_up(body, i))
        except Exception as e:  # reported below; the other sessions go on
            results[(i, "error")] = e

    t0 = time.time()
    threads = [threading.Thread(target=session, args=(i,)) for i in range(1, sessions + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - t0
    errors = [v for k, v in results.items() if k[1] == "error"]
    for (i, k), r in sorted((k, v) for k, v in results.items() if k[1] != "error"):
        show(f"session {i} {'first turn' if k == 0 else 'follow-up'}", r)
    out = sum(r[2].get("output_tokens", 0) for k, r in results.items() if k[1] != "error")
    print(f"{sessions} sessions at once: {out} output tokens in {wall:.2f} s ({out / wall:.1f} tok/s, prefill "
          f"included), {len(errors)} errors")
    for e in errors:
        print("error:", e)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
