"""Live traffic through the fleet endpoint, summed per window into the plan's measured cost.

The endpoint's ingress sees every request the plan serves. Per request it notes whether an
answer came, the tokens it carried and, for a streamed answer, the time to its first token.
Each window that saw requests becomes one :class:`~quantplan.agent.cluster.events.CostEvent`
of the plan, marked ``measured_by="traffic"``: the tokens per second the fleet actually served
and, the whole fleet being rented whether busy or not, what a million of them cost at that
rate; and one per plan line that answered requests in it (``scope="line"``), priced with that
line's instances only, so a line that carries little shows its own high $ per token. A
benchmark (``quantplan apply``) measures the same at the planned load; this measures it at the
load users bring.

Token counts are the engines' own ``usage`` where the answer has one (every non-streamed
OpenAI answer; a streamed one only when the client asked for it), else, for a stream, one per
event that carries text: both engines stream one token per event. A request with neither (an
error body, say) counts as a request but adds no tokens, and the window says how many did so.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from quantplan.agent.cluster.events import CostEvent
from quantplan.agent.costs import usd_per_million_tokens


class LinePrice(BaseModel):
    """One plan line (a Serve deployment of the fleet) as its cost events name and price it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(description="scheme engine instance-type, as the dashboard groups replicas")
    usd_per_hour: float = Field(ge=0, description="The line's instances, per hour")
    predicted_usd_per_million_tokens: float | None = Field(default=None, ge=0)


class TrafficConfig(BaseModel):
    """What the ingress needs to price its traffic (JSON into the Serve replica)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plan_id: str = Field(description="Key of the plan's cost events (the Serve application)")
    usd_per_hour: float = Field(ge=0, description="Every instance of the plan's fleet, per hour")
    predicted_usd_per_million_tokens: float | None = Field(default=None, ge=0)
    window_s: float = Field(default=10.0, gt=0, description="Seconds summed into one event")
    lines: dict[str, LinePrice] = Field(
        default_factory=dict, description="Per Serve deployment name: its plan line"
    )


class TrafficWindow(BaseModel):
    """The requests of one window, summed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float = Field(gt=0)
    requests: int = Field(ge=0)
    failed: int = Field(ge=0, description="Answered with an error status, or not at all")
    uncounted: int = Field(ge=0, description="Requests whose tokens could not be counted")
    prompt_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    ttft_p95_ms: float | None = Field(default=None, description="Over the streamed requests")
    by_line: dict[str, TrafficWindow] = Field(
        default_factory=dict,
        description="The same, per Serve deployment that answered (a request no line answered "
        "counts in the plan's sums only)",
    )

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def total_tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.output_tokens) / self.seconds


def cost_event(window: TrafficWindow, config: TrafficConfig) -> CostEvent:
    """The plan's cost at the window's traffic."""
    return _priced(
        window,
        config,
        scope="plan",
        key=config.plan_id,
        usd_per_hour=config.usd_per_hour,
        predicted=config.predicted_usd_per_million_tokens,
    )


def line_cost_events(window: TrafficWindow, config: TrafficConfig) -> list[CostEvent]:
    """Each plan line's cost at the share of the window's traffic it answered (lines the
    config does not name are left out: they cannot be priced)."""
    events = []
    for deployment, part in sorted(window.by_line.items()):
        line = config.lines.get(deployment)
        if line is None:
            continue
        events.append(
            _priced(
                part,
                config,
                scope="line",
                key=f"{config.plan_id}|{line.label}",
                usd_per_hour=line.usd_per_hour,
                predicted=line.predicted_usd_per_million_tokens,
                deployment=line.label,
            )
        )
    return events


def _priced(
    window: TrafficWindow,
    config: TrafficConfig,
    *,
    scope: Literal["plan", "line"],
    key: str,
    usd_per_hour: float,
    predicted: float | None,
    deployment: str | None = None,
) -> CostEvent:
    return CostEvent(
        scope=scope,
        key=key,
        plan_id=config.plan_id,
        deployment=deployment,
        measured_by="traffic",
        window_s=window.seconds,
        requests=window.requests,
        failed_requests=window.failed,
        output_tokens_per_s=window.output_tokens_per_s,
        total_tokens_per_s=window.total_tokens_per_s,
        usd_per_hour=usd_per_hour,
        usd_per_million_output_tokens=usd_per_million_tokens(
            usd_per_hour, window.output_tokens_per_s
        ),
        usd_per_million_tokens=usd_per_million_tokens(usd_per_hour, window.total_tokens_per_s),
        predicted_usd_per_million_tokens=predicted,
        ttft_p95_ms=window.ttft_p95_ms,
    )


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


class _Tally:
    """Requests summed since a window began."""

    def __init__(self) -> None:
        self.requests = self.failed = self.uncounted = 0
        self.prompt_tokens = self.output_tokens = 0
        self.ttfts_ms: list[float] = []

    def add(
        self, ok: bool, output_tokens: int | None, prompt_tokens: int | None, ttft_s: float | None
    ) -> None:
        self.requests += 1
        self.failed += 0 if ok else 1
        if output_tokens is None:
            self.uncounted += 1
        else:
            self.output_tokens += output_tokens
        self.prompt_tokens += prompt_tokens or 0
        if ttft_s is not None:
            self.ttfts_ms.append(1000 * ttft_s)

    def window(self, seconds: float, by_line: dict[str, TrafficWindow]) -> TrafficWindow:
        return TrafficWindow(
            seconds=seconds,
            requests=self.requests,
            failed=self.failed,
            uncounted=self.uncounted,
            prompt_tokens=self.prompt_tokens,
            output_tokens=self.output_tokens,
            ttft_p95_ms=_p95(self.ttfts_ms),
            by_line=by_line,
        )


class TrafficMeter:
    """Requests noted as they finish; :meth:`take` hands over a window once it has passed.

    ``aligned``: windows are the wall clock's slots (multiples of the window since the epoch),
    so the meters of a line's replicas count the same seconds and the collector can sum them
    (:class:`TrafficSums`); the clock must then be the wall clock.
    """

    def __init__(
        self,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        aligned: bool = False,
    ) -> None:
        self.window_s = window_s
        self.clock = clock
        self.aligned = aligned
        self._reset(clock())

    def _reset(self, start: float) -> None:
        self.started = math.floor(start / self.window_s) * self.window_s if self.aligned else start
        self.total = _Tally()
        self.lines: dict[str, _Tally] = {}

    @property
    def requests(self) -> int:
        return self.total.requests

    def record(
        self,
        *,
        ok: bool,
        output_tokens: int | None,
        prompt_tokens: int | None = None,
        ttft_s: float | None = None,
        line: str | None = None,
    ) -> None:
        """One finished request; ``line``: the Serve deployment that answered it, if any."""
        self.total.add(ok, output_tokens, prompt_tokens, ttft_s)
        if line is not None:
            self.lines.setdefault(line, _Tally()).add(ok, output_tokens, prompt_tokens, ttft_s)

    def take(self) -> TrafficWindow | None:
        """The window so far, if it has run its length and saw requests (then a new one
        starts); else None."""
        taken = self.take_share()
        return None if taken is None else taken[0]

    def take_share(self) -> tuple[TrafficWindow, list[float], float] | None:
        """As :meth:`take`, with the window's times to first token (ms) and its start."""
        now = self.clock()
        started, elapsed = self.started, now - self.started
        if elapsed < self.window_s or self.total.requests == 0:
            if self.total.requests == 0 and elapsed >= self.window_s:
                self._reset(now)  # an idle window: the next one starts with its first request
            return None
        by_line = {name: tally.window(elapsed, {}) for name, tally in self.lines.items()}
        window = self.total.window(elapsed, by_line)
        ttfts = self.total.ttfts_ms
        self._reset(now)
        return window, ttfts, started


class TrafficShare(BaseModel):
    """One replica's requests over one slot of the wall clock, for a line whose replicas answer
    the endpoint themselves (no ingress sees all of the plan's requests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replica_id: str
    line: str = Field(description="The Serve deployment (plan line) the replica belongs to")
    slot_start: float = Field(description="Epoch seconds, a multiple of the config's window")
    window: TrafficWindow
    ttfts_ms: list[float] = Field(default_factory=list, description="The streamed requests'")
    config: TrafficConfig


class TrafficSums:
    """The collector's sums of replicas' shares: once a slot is over and its shares had time
    to come (``grace_s``), the plan's cost events for it. A share of a slot already summed
    (its replica's clock was that late) is counted in ``late`` and left out."""

    def __init__(self, grace_s: float = 2.0) -> None:
        self.grace_s = grace_s
        self._open: dict[tuple[str, float], list[TrafficShare]] = {}
        self._closed: dict[str, float] = {}  # plan -> the last slot summed
        self.late = 0

    def add(self, share: TrafficShare) -> None:
        plan = share.config.plan_id
        if share.slot_start <= self._closed.get(plan, -math.inf):
            self.late += 1
            return
        self._open.setdefault((plan, share.slot_start), []).append(share)

    def due(self, now: float) -> list[CostEvent]:
        """The cost events of every slot over by ``grace_s`` at ``now`` (epoch seconds)."""
        events: list[CostEvent] = []
        for key in sorted(self._open, key=lambda k: k[1]):
            shares = self._open[key]
            config = shares[-1].config
            if now < key[1] + config.window_s + self.grace_s:
                continue
            del self._open[key]
            self._closed[key[0]] = max(self._closed.get(key[0], -math.inf), key[1])
            window = summed_window(shares, config.window_s)
            events += [cost_event(window, config), *line_cost_events(window, config)]
        return events


def summed_window(shares: list[TrafficShare], seconds: float) -> TrafficWindow:
    """The replicas' shares of one slot as one window of the plan, and one per line."""

    def total(parts: list[TrafficShare]) -> TrafficWindow:
        return TrafficWindow(
            seconds=seconds,
            requests=sum(p.window.requests for p in parts),
            failed=sum(p.window.failed for p in parts),
            uncounted=sum(p.window.uncounted for p in parts),
            prompt_tokens=sum(p.window.prompt_tokens for p in parts),
            output_tokens=sum(p.window.output_tokens for p in parts),
            ttft_p95_ms=_p95([t for p in parts for t in p.ttfts_ms]),
        )

    lines = sorted({share.line for share in shares})
    by_line = {line: total([s for s in shares if s.line == line]) for line in lines}
    return total(shares).model_copy(update={"by_line": by_line})


def _usage(answer: Any) -> tuple[int | None, int | None]:
    """(completion, prompt) tokens of an OpenAI answer's ``usage``, where it has one."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if not isinstance(usage, dict):
        return None, None
    completion, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    return (
        completion if isinstance(completion, int) and completion >= 0 else None,
        prompt if isinstance(prompt, int) and prompt >= 0 else None,
    )


def usage_of_body(body: bytes) -> tuple[int | None, int | None]:
    """(completion, prompt) tokens of a non-streamed answer; (None, None) if it has none."""
    try:
        return _usage(json.loads(body))
    except ValueError:
        return None, None


def _carries_text(event: Any) -> bool:
    choices = event.get("choices") if isinstance(event, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    delta = choice.get("delta")
    text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
    return isinstance(text, str) and text != ""


class StreamTally:
    """Counts the tokens of a server-sent event stream as its chunks pass through."""

    def __init__(self) -> None:
        self._pending = b""
        self.text_events = 0
        self.output_tokens: int | None = None  # from a usage event, when one comes
        self.prompt_tokens: int | None = None

    def feed(self, chunk: bytes) -> None:
        # Events end with a blank line; a chunk may end inside one, so the tail waits.
        *events, self._pending = (self._pending + chunk).split(b"\n\n")
        for event in events:
            self._event(event)

    def _event(self, raw: bytes) -> None:
        for line in raw.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                continue
            try:
                event = json.loads(data)
            except ValueError:
                continue
            completion, prompt = _usage(event)
            if completion is not None:
                self.output_tokens, self.prompt_tokens = completion, prompt
            if _carries_text(event):
                self.text_events += 1

    def tokens(self) -> tuple[int, int | None]:
        """(output, prompt) tokens: the usage event's, else one per event with text."""
        if self._pending.strip():
            self._event(self._pending)
            self._pending = b""
        if self.output_tokens is not None:
            return self.output_tokens, self.prompt_tokens
        return self.text_events, None
