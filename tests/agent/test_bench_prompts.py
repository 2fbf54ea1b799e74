"""No benchmark prompt is served from a prefix cache: every prompt of every level, warm-up and
run opens with its own tag. Without it, fixed levels (``quantplan bench URL -c 1,8``) sent the
same prompts at every level and llama-server's slots answered the later levels' prefills from
cache (a partial-offload run's TTFT fell from 1,068 ms at one request to 155 ms at eight)."""

from __future__ import annotations

import asyncio
import itertools
import json

import httpx

from quantplan.agent.benchmark.client import Endpoint
from quantplan.agent.benchmark.runner import BenchPlan, run_plan
from quantplan.agent.benchmark.workload import CHARS_PER_TOKEN, Workload, make_prompts

ENDPOINT = Endpoint(base_url="http://bench.test", model="m")


def _server(seen: list[str]) -> httpx.MockTransport:
    """An OpenAI completions stream of one token per request that keeps every prompt."""

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content)["prompt"])
        usage = {"prompt_tokens": 10, "completion_tokens": 1}
        events = [
            {"choices": [{"text": "x", "finish_reason": "length"}]},
            {"choices": [], "usage": usage},
        ]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(answer)


def _longest_shared_prefix(prompts: list[str]) -> int:
    # Sorted, the longest prefix any two share is one that neighbours share.
    ordered = sorted(prompts)
    return max(_shared(a, b) for a, b in itertools.pairwise(ordered))


def _shared(a: str, b: str) -> int:
    pairs = enumerate(zip(a, b, strict=False))
    return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))


def test_no_two_prompts_of_a_plan_or_of_two_runs_share_more_than_the_tag_opening() -> None:
    seen: list[str] = []
    plan = BenchPlan(mode="closed", concurrencies=[1, 2, 4], num_requests=6, warmup_requests=2)
    for _ in range(2):  # the same plan twice against the same server, as a user reruns it
        result = asyncio.run(run_plan(ENDPOINT, plan, transport=_server(seen)))
        assert [level.metrics.completed for level in result.levels] == [6, 6, 6]
    assert len(seen) == 2 * (2 + 3 * 6)
    assert len(set(seen)) == len(seen)
    # At most a run's "[3b3e73-" in common (a few tokens): no cache block is shared.
    assert _longest_shared_prefix(seen) <= len("[3b3e73-")


def test_the_text_after_the_tag_depends_on_the_seed_alone() -> None:
    workload = Workload(input_tokens=64, seed=3)
    first, again = make_prompts(workload, 4, run="aaaaaa"), make_prompts(workload, 4, run="aaaaaa")
    assert first == again
    assert [p.split("] ", 1)[0] for p in first] == [f"[aaaaaa-{i}" for i in range(4)]
    assert all(len(p) == 64 * CHARS_PER_TOKEN for p in first)
    other = make_prompts(workload, 4, run="bbbbbb")
    assert [p.split("] ", 1)[1] for p in other] == [p.split("] ", 1)[1] for p in first]
