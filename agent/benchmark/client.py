"""An async streaming client for OpenAI-compatible completion servers (vLLM, llama.cpp).

One request = one ``POST /v1/completions`` with ``stream: true``; the client timestamps every
server-sent-events chunk and turns the stream into a :class:`RequestSample`. HTTP is httpx's;
tests inject an ``httpx.MockTransport`` through :func:`make_http_client`.
"""

from __future__ import annotations

import json
import time

import httpx
from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.benchmark.metrics import RequestSample
from quantplan.agent.benchmark.workload import Workload


class Endpoint(BaseModel):
    """Where an OpenAI-compatible server listens and what it calls its model."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="e.g. http://127.0.0.1:8000 (no /v1)")
    model: str = Field(description="Model name the server expects in requests")
    api_key: str | None = Field(default=None, description="Bearer token, if the server wants one")
    ignore_eos_body: dict[str, object] = Field(
        default_factory=dict,
        description="Request fields that keep this server generating past end-of-sequence, for "
        "servers without vLLM's ignore_eos (llama.cpp: a -100 logit bias on the EOS token)",
    )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def make_http_client(
    endpoint: Endpoint,
    *,
    timeout_s: float = 300.0,
    max_connections: int = 1024,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """One pooled client for a whole run (a fresh TCP connection per request would skew TTFT)."""
    return httpx.AsyncClient(
        base_url=endpoint.base_url,
        headers=endpoint.headers,
        timeout=httpx.Timeout(timeout_s, connect=10.0),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
    )


def completion_body(endpoint: Endpoint, prompt: str, workload: Workload) -> dict[str, object]:
    body: dict[str, object] = {
        "model": endpoint.model,
        "prompt": prompt,
        "max_tokens": workload.output_tokens,
        "temperature": workload.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if workload.ignore_eos:
        body["ignore_eos"] = True
        body.update(endpoint.ignore_eos_body)
    return body


async def stream_completion(
    client: httpx.AsyncClient, endpoint: Endpoint, prompt: str, workload: Workload
) -> RequestSample:
    """Send one streamed completion; never raises for request-level failures."""
    start = time.perf_counter()
    first: float | None = None
    last: float | None = None
    gaps: list[float] = []
    chunks = 0
    usage: dict[str, int] | None = None
    try:
        async with client.stream(
            "POST", "/v1/completions", json=completion_body(endpoint, prompt, workload)
        ) as response:
            if response.status_code != 200:
                detail = (await response.aread()).decode(errors="replace")[:300]
                return _failed(start, f"HTTP {response.status_code}: {detail}")
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                now = time.perf_counter()
                data = json.loads(payload)
                if _is_token_chunk(data):
                    chunks += 1
                    if first is None:
                        first = now
                    elif last is not None:
                        gaps.append(now - last)
                    last = now
                if data.get("usage"):
                    usage = data["usage"]
    except (httpx.HTTPError, json.JSONDecodeError) as error:
        return _failed(start, f"{type(error).__name__}: {error}")
    end = time.perf_counter()
    if first is None:
        return _failed(start, "the stream ended without any token", end=end)
    prompt_tokens = int(usage.get("prompt_tokens") or 0) if usage else 0
    # llama-cpp-python sends no usage in streams: there one chunk carries one token.
    output_tokens = int(usage.get("completion_tokens") or chunks) if usage else chunks
    return RequestSample(
        ok=True,
        start_s=start,
        end_s=end,
        ttft_s=first - start,
        chunk_gaps_s=gaps,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
    )


def _is_token_chunk(data: dict) -> bool:
    """Whether a stream chunk carries a generated token.

    vLLM's benchmark counts every chunk with a choice. llama-cpp-python ends its stream with an
    extra choice holding no text and the finish reason, which is not a token: such a closing
    chunk is skipped (vLLM puts its last token and the finish reason in the same chunk).
    """
    choices = data.get("choices")
    if not choices:
        return False
    choice = choices[0]
    return bool(choice.get("text")) or choice.get("finish_reason") is None


def _failed(start: float, error: str, *, end: float | None = None) -> RequestSample:
    return RequestSample(
        ok=False, start_s=start, end_s=end if end is not None else time.perf_counter(), error=error
    )
