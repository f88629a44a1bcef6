#!/usr/bin/env python3
"""Soak test of `pensieve serve` (issue 14): N requests from C concurrent clients over both APIs, streaming and
not, with disconnects mixed in; the server's resident memory is sampled and must stay flat after warm-up.

    python3 bench/soak.py [--binary build/release/src/pensieve] [--requests 10000] [--clients 16]
                          [--model demo] [--warmup 1000] [--tolerance 0.05]

Starts the server itself (on a free port, quiet), prints one line per 1,000 requests (done, statuses, RSS) and
a summary; exits 1 when a request got an unexpected status (anything but 200, or 529 when the queue was full),
a stream was malformed, or RSS after warm-up moved by more than the tolerance. Standard library only.
"""
import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time

KINDS = ["anthropic", "anthropic-stream", "openai", "openai-stream", "disconnect"]
PROMPTS = ["What is 12 + 30?", "Say hi", "Write a haiku about memory.", "List three colors.", "What is 7 * 8?"]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_request(port, i):
    """Returns (kind, status, ok)."""
    kind = KINDS[i % len(KINDS)]
    prompt = PROMPTS[i % len(PROMPTS)]
    max_tokens = 8 + i % 24
    stream = kind.endswith("stream") or kind == "disconnect"
    if kind.startswith("openai"):
        path = "/v1/chat/completions"
        body = {"model": "m", "max_tokens": max_tokens, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    else:
        path = "/v1/messages"
        body = {"model": "m", "max_tokens": max_tokens, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, json.dumps(body), {"content-type": "application/json", "anthropic-version": "2023-06-01"})
        r = conn.getresponse()
        if kind == "disconnect":  # read a little of the stream, then drop the connection
            r.read(64)
            conn.close()
            return kind, r.status, r.status in (200, 529)
        data = r.read()
        if r.status != 200:
            return kind, r.status, r.status == 529
        if not stream:
            j = json.loads(data)
            return kind, 200, ("content" in j) or ("choices" in j)
        text = data.decode("utf-8")
        if kind == "anthropic-stream":
            return kind, 200, "event: message_stop" in text
        return kind, 200, text.rstrip().endswith("data: [DONE]")
    except Exception as e:  # noqa: BLE001 - any failure of a request is counted, not fatal
        return kind, f"exception {type(e).__name__}", False
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default="build/release/src/pensieve")
    ap.add_argument("--model", default="")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--tolerance", type=float, default=0.05)
    a = ap.parse_args()

    cmd = [a.binary, "serve", "--port", "0", "--quiet"] + (["--model", a.model] if a.model else [])
    server = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = 0
    for line in server.stderr:
        m = re.search(r"serving .* on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if not port:
        print("soak: the server did not start", file=sys.stderr)
        return 1
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()

    lock = threading.Lock()
    next_i = [0]
    done = [0]
    statuses = {}
    bad = []
    samples = []  # (requests done, rss kB)
    t0 = time.time()

    def client():
        while True:
            with lock:
                i = next_i[0]
                if i >= a.requests:
                    return
                next_i[0] += 1
            kind, status, ok = one_request(port, i)
            with lock:
                done[0] += 1
                statuses[(kind, status)] = statuses.get((kind, status), 0) + 1
                if not ok and len(bad) < 20:
                    bad.append((i, kind, status))
                if done[0] % 250 == 0:
                    samples.append((done[0], rss_kb(server.pid)))
                if done[0] % 1000 == 0:
                    print(f"{done[0]:6d} requests, {time.time() - t0:7.1f} s, RSS {samples[-1][1] / 1024:.1f} MiB", flush=True)

    threads = [threading.Thread(target=client) for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.time() - t0
    server.terminate()
    server.wait(timeout=30)

    after = [kb for n, kb in samples if n >= a.warmup]
    base = after[0] if after else 0
    spread = (max(after) - min(after)) / base if base else 0
    print(f"soak: {done[0]} requests from {a.clients} clients in {elapsed:.1f} s ({done[0] / elapsed:.1f}/s)")
    for (kind, status), n in sorted(statuses.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        print(f"  {kind:17s} {status}: {n}")
    print(f"  RSS after {a.warmup} requests: {min(after) / 1024:.1f} to {max(after) / 1024:.1f} MiB "
          f"(spread {100 * spread:.1f} % of {base / 1024:.1f} MiB; bound {100 * a.tolerance:.0f} %)")
    failed = bool(bad) or spread > a.tolerance
    for i, kind, status in bad:
        print(f"  FAILED request {i} ({kind}): {status}")
    print("soak: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
