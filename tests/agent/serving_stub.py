"""A tiny OpenAI-style streaming server for the manager's and protocol's fault tests.

Runs as a real process on a real port (standard library only), so the tests exercise real
sockets, process groups and signals; it has no model. ``--mode`` picks the behaviour:
healthy, never-healthy (listens, answers 503), oom (prints vLLM's KV-cache message, exits 1),
exit (exits 3 with no message), fail-requests (healthy, but every completion is HTTP 500).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", default="healthy")
    parser.add_argument("--token-delay", type=float, default=0.01)
    # Like the real engines, the key comes from the environment, not the command line.
    parser.add_argument("--api-key", default=os.environ.get("QUANTPLAN_STUB_API_KEY"))
    args = parser.parse_args()

    if args.mode == "oom":
        print(
            "ValueError: The model's max seq len (4096) is larger than the maximum number of "
            "tokens that can be stored in KV cache (3584).",
            flush=True,
        )
        sys.exit(1)
    if args.mode == "exit":
        sys.exit(3)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: object) -> None:
            return

        def _authorized(self) -> bool:
            if args.api_key and self.headers.get("Authorization") != f"Bearer {args.api_key}":
                self._json(401, {"error": "unauthorized"})
                return False
            return True

        def _json(self, code: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if not self._authorized():
                return
            if args.mode == "never-healthy":
                self._json(503, {"error": "loading"})
                return
            self._json(200, {"data": [{"id": "stub"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length) or b"{}")
            if not self._authorized():
                return
            if self.path == "/tokenize":
                self._json(200, {"count": len(request.get("prompt", "").split())})
                return
            if args.mode == "fail-requests":
                self._json(500, {"error": "boom"})
                return
            tokens = int(request.get("max_tokens", 8))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for index in range(tokens):
                time.sleep(args.token_delay)
                self._chunk({"choices": [{"index": 0, "text": f"t{index} "}]})
            self._chunk(
                {
                    "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": tokens},
                }
            )
            self._send(b"data: [DONE]\n\n")
            self._send(b"")

        def _chunk(self, body: object) -> None:
            self._send(f"data: {json.dumps(body)}\n\n".encode())

        def _send(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
