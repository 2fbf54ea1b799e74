"""A closed-loop streaming client for llama-server on the GPU machine (standard library only).

That machine has no pydantic or httpx, so quantplan's own client (agent/benchmark) cannot run there.
This one follows the same protocol: ``concurrency`` workers, each sending its next streamed
``POST /v1/completions`` when the last one ended, ``ignore_eos`` so every request generates
``max_tokens``; TTFT = send to first token chunk, output tok/s = tokens of completed requests /
wall time. Prints one JSON line per level.

    python3 bench/llamacpp_server_gpu_http.py --port 8080 --levels 1,8,32,64 --label 8b-Q4_K_M
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import threading
import time

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "hum",
]


def prompt(index: int, words: int) -> str:
    # Different openings per request, so no slot can reuse another's cached prefix.
    return " ".join(WORDS[(index * 7 + i * (index % 5 + 1)) % len(WORDS)] for i in range(words))


# Fields merged into every request body (--extra), e.g. a shorter sampler chain.
EXTRA: dict = {}


def one_request(port: int, text: str, max_tokens: int) -> tuple[float, int, float]:
    request = {
        "prompt": text,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "cache_prompt": False,
    }
    body = json.dumps(request | EXTRA)
    if not (request | EXTRA)["stream"]:
        return whole_request(port, body)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    first, tokens = None, 0
    for raw in response:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("choices") and chunk["choices"][0].get("text"):
            tokens += 1
            first = first or time.perf_counter()
    end = time.perf_counter()
    connection.close()
    return ((first or end) - start) * 1000, tokens, end


def whole_request(port: int, body: str) -> tuple[float, int, float]:
    """One non-streamed request: no per-token events; TTFT is not observable (reported as 0)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    answer = json.loads(connection.getresponse().read())
    end = time.perf_counter()
    connection.close()
    return 0.0, int(answer["usage"]["completion_tokens"]), end


def level(port: int, concurrency: int, requests: int, words: int, max_tokens: int) -> dict:
    queue = list(range(requests))
    lock = threading.Lock()
    results: list[tuple[float, int, float]] = []

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index = queue.pop()
            outcome = one_request(port, prompt(index, words), max_tokens)
            with lock:
                results.append(outcome)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ttfts = sorted(r[0] for r in results)
    return {
        "concurrency": concurrency,
        "requests": requests,
        "output_tokens": sum(r[1] for r in results),
        "wall_s": round(wall, 3),
        "output_tokens_per_s": round(sum(r[1] for r in results) / wall, 1),
        "ttft_p50_ms": round(statistics.median(ttfts), 1),
        "ttft_p95_ms": round(ttfts[max(0, math.ceil(0.95 * len(ttfts)) - 1)], 1),  # nearest rank
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--label", required=True)
    parser.add_argument("--words", type=int, default=100, help="about 128 prompt tokens")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="requests per worker and level")
    parser.add_argument("--extra", default="{}", help="JSON merged into every request body")
    args = parser.parse_args()
    EXTRA.update(json.loads(args.extra))
    one_request(args.port, prompt(999, args.words), 8)  # warm-up
    for concurrency in (int(x) for x in args.levels.split(",")):
        requests = args.rounds * concurrency
        result = level(args.port, concurrency, requests, args.words, args.max_tokens)
        print(json.dumps({"model": args.label, "http": True, "extra": EXTRA, **result}), flush=True)


if __name__ == "__main__":
    main()
