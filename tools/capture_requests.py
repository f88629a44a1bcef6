#!/usr/bin/env python3
"""A recording proxy: forwards every request to a running server and appends each POST body to a file.

Usage: capture_requests.py LISTEN_PORT UPSTREAM_PORT OUT.jsonl

Point a client (the Claude Code CLI: ANTHROPIC_BASE_URL=http://127.0.0.1:LISTEN_PORT) at it with `pensieve
serve` behind it on UPSTREAM_PORT; OUT.jsonl then holds one line per POST, {"path": ..., "body": ...}, as the
client sent it, for replays (tools/gpu/claude_code_replay.py). Responses, streamed ones included, pass through
unchanged. Captures of proprietary clients stay outside the repository (.captures/ is ignored).
"""
import http.client
import http.server
import json
import sys
import threading

LISTEN, UPSTREAM, OUT = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Proxy(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0) or 0))
        if self.command == "POST":
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = body.decode("utf-8", "replace")
            with lock, open(OUT, "a") as f:
                f.write(json.dumps({"path": self.path, "body": parsed}) + "\n")
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=600)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        up.request(self.command, self.path, body if body else None, headers)
        r = up.getresponse()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        up.close()

    do_GET = do_POST = do_HEAD = do_DELETE = forward

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
