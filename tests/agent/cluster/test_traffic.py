"""The endpoint's traffic meter: windows, token counts from answers and streams, the plan's
cost at the window's rate."""

from __future__ import annotations

import json

import pytest

from quantplan.agent.cluster.traffic import (
    LinePrice,
    StreamTally,
    TrafficConfig,
    TrafficMeter,
    TrafficShare,
    TrafficSums,
    cost_event,
    line_cost_events,
    usage_of_body,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _sse(*events: object) -> bytes:
    return b"".join(
        b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n"
        for e in events
    )


def test_a_window_is_handed_over_once_it_has_run_and_then_starts_anew() -> None:
    clock = Clock()
    meter = TrafficMeter(10.0, clock)
    meter.record(ok=True, output_tokens=30, prompt_tokens=10, ttft_s=0.2)
    clock.now += 4
    meter.record(ok=False, output_tokens=None)
    assert meter.take() is None  # 4 s of a 10 s window
    clock.now += 6
    meter.record(ok=True, output_tokens=70, prompt_tokens=20, ttft_s=0.4)
    window = meter.take()
    assert window is not None
    assert (window.requests, window.failed, window.uncounted) == (3, 1, 1)
    assert window.output_tokens_per_s == pytest.approx(10.0)  # 100 tokens in 10 s
    assert window.total_tokens_per_s == pytest.approx(13.0)
    assert window.ttft_p95_ms == pytest.approx(400.0)
    assert meter.take() is None and meter.requests == 0  # a new window


def test_each_plan_line_is_priced_with_its_own_instances_at_the_traffic_it_answered() -> None:
    clock = Clock()
    meter = TrafficMeter(10.0, clock)
    for _ in range(3):
        meter.record(ok=True, output_tokens=300, prompt_tokens=100, ttft_s=0.1, line="0-gpu")
    meter.record(ok=True, output_tokens=100, ttft_s=0.9, line="1-cpu")
    meter.record(ok=False, output_tokens=None)  # no line answered: the plan's sums only
    meter.record(ok=False, output_tokens=None, line="unpriced")  # a line the config lacks
    clock.now += 10
    window = meter.take()
    assert window is not None and window.requests == 6
    assert sorted(window.by_line) == ["0-gpu", "1-cpu", "unpriced"]
    config = TrafficConfig(
        plan_id="demo",
        usd_per_hour=4.0,
        lines={
            "0-gpu": LinePrice(
                label="awq vllm g5.xlarge", usd_per_hour=3.6, predicted_usd_per_million_tokens=1.5
            ),
            "1-cpu": LinePrice(label="q4 llama.cpp c7i.xlarge", usd_per_hour=0.4),
        },
    )
    gpu, cpu = line_cost_events(window, config)
    assert (gpu.scope, gpu.key, gpu.deployment) == (
        "line",
        "demo|awq vllm g5.xlarge",
        "awq vllm g5.xlarge",
    )
    assert gpu.plan_id == "demo" and gpu.measured_by == "traffic"
    # 900 output tokens in 10 s on $3.6/h: 324,000 tokens an hour, $11.11 per million.
    assert gpu.output_tokens_per_s == pytest.approx(90.0)
    assert gpu.usd_per_million_output_tokens == pytest.approx(3.6 / (90 * 3600) * 1e6)
    assert (gpu.requests, gpu.ttft_p95_ms, gpu.predicted_usd_per_million_tokens) == (3, 100.0, 1.5)
    assert cpu.key == "demo|q4 llama.cpp c7i.xlarge" and cpu.ttft_p95_ms == pytest.approx(900.0)
    assert cpu.usd_per_hour == 0.4 and cpu.predicted_usd_per_million_tokens is None
    plan = cost_event(window, config)
    assert (plan.requests, plan.failed_requests, plan.output_tokens_per_s) == (6, 2, 100.0)
    assert plan.deployment is None


def test_an_idle_window_gives_nothing_and_the_next_starts_with_traffic() -> None:
    clock = Clock()
    meter = TrafficMeter(10.0, clock)
    clock.now += 60
    assert meter.take() is None
    meter.record(ok=True, output_tokens=10)
    clock.now += 10
    window = meter.take()
    assert window is not None and window.seconds == pytest.approx(10.0)  # not 70 s


def test_cost_per_million_tokens_is_the_fleets_hourly_price_at_the_served_rate() -> None:
    clock = Clock()
    meter = TrafficMeter(1.0, clock)
    meter.record(ok=True, output_tokens=1000, prompt_tokens=1000)
    clock.now += 1.0
    window = meter.take()
    assert window is not None
    config = TrafficConfig(plan_id="demo", usd_per_hour=3.6, predicted_usd_per_million_tokens=0.2)
    event = cost_event(window, config)
    assert event.scope == "plan" and event.key == "demo" and event.measured_by == "traffic"
    # $3.6/h at 1,000 output tokens/s: 3.6 M tokens an hour, $1 per million.
    assert event.usd_per_million_output_tokens == pytest.approx(1.0)
    assert event.usd_per_million_tokens == pytest.approx(0.5)
    assert (event.requests, event.failed_requests, event.window_s) == (1, 0, 1.0)
    assert event.predicted_usd_per_million_tokens == 0.2

    clock.now += 1.0
    meter.record(ok=False, output_tokens=None)
    clock.now += 1.0
    idle = cost_event(meter.take(), config)  # type: ignore[arg-type]
    assert idle.output_tokens_per_s == 0 and idle.usd_per_million_tokens is None  # not infinite


def test_usage_of_a_whole_answer() -> None:
    body = {"choices": [{"text": "Paris"}], "usage": {"completion_tokens": 3, "prompt_tokens": 7}}
    assert usage_of_body(json.dumps(body).encode()) == (3, 7)
    assert usage_of_body(b'{"choices": []}') == (None, None)
    assert usage_of_body(b"not json") == (None, None)
    assert usage_of_body(b'{"usage": {"completion_tokens": -1}}') == (None, None)


def test_a_stream_counts_its_text_events_across_chunk_boundaries() -> None:
    stream = _sse(
        {"choices": [{"delta": {"role": "assistant"}}]},  # no text: not a token
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}}]},
        {"choices": [{"text": "!"}]},  # completions stream text, not deltas
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
        b"[DONE]",
    )
    tally = StreamTally()
    for start in range(0, len(stream), 7):  # chunks that cut events apart
        tally.feed(stream[start : start + 7])
    assert tally.tokens() == (3, None)


def test_a_streams_usage_event_is_taken_over_the_count() -> None:
    tally = StreamTally()
    tally.feed(_sse({"choices": [{"delta": {"content": "a"}}]}))
    tally.feed(_sse({"choices": [], "usage": {"completion_tokens": 5, "prompt_tokens": 9}}))
    assert tally.tokens() == (5, 9)


def test_a_last_event_without_its_blank_line_still_counts() -> None:
    tally = StreamTally()
    tally.feed(b'data: {"choices": [{"text": "x"}]}')
    assert tally.tokens() == (1, None)


def _share(meter: TrafficMeter, replica: str, config: TrafficConfig) -> TrafficShare:
    taken = meter.take_share()
    assert taken is not None
    window, ttfts, started = taken
    return TrafficShare(
        replica_id=replica,
        line="0-q4",
        slot_start=started,
        window=window,
        ttfts_ms=ttfts,
        config=config,
    )


def test_replicas_meter_the_same_wall_clock_slots_and_the_collector_sums_them() -> None:
    line = LinePrice(label="gguf-q4_k_m llama.cpp c7i.xlarge", usd_per_hour=0.36)
    config = TrafficConfig(plan_id="demo", usd_per_hour=0.36, window_s=10.0, lines={"0-q4": line})
    clock = Clock()
    clock.now = 1003.0  # a replica's first request, 3 s into the slot [1000, 1010)
    first, second = (TrafficMeter(10.0, clock, aligned=True) for _ in range(2))
    first.record(ok=True, output_tokens=20, prompt_tokens=5, ttft_s=0.1)
    clock.now = 1008.0
    second.record(ok=True, output_tokens=40, prompt_tokens=5, ttft_s=0.3)
    second.record(ok=False, output_tokens=None)
    assert first.take_share() is None and second.take_share() is None  # the slot runs on
    clock.now = 1010.05
    shares = [_share(first, "r1", config), _share(second, "r2", config)]
    assert {s.slot_start for s in shares} == {1000.0}

    sums = TrafficSums(grace_s=2.0)
    for share in shares:
        sums.add(share)
    assert sums.due(now=1011.0) == []  # a replica's share may still be on its way
    plan, per_line = sums.due(now=1012.5)
    # One window of the plan over the slot's 10 s, both replicas' requests in it.
    assert (plan.scope, plan.requests, plan.failed_requests) == ("plan", 3, 1)
    assert plan.output_tokens_per_s == pytest.approx(6.0)
    assert plan.total_tokens_per_s == pytest.approx(7.0)
    assert plan.ttft_p95_ms == pytest.approx(300.0)
    assert (per_line.scope, per_line.key) == ("line", "demo|gguf-q4_k_m llama.cpp c7i.xlarge")
    assert per_line.output_tokens_per_s == plan.output_tokens_per_s
    assert sums.due(now=1100.0) == []

    # A share of a slot already summed came too late: left out and counted, not a second event.
    clock.now = 1009.0
    late = TrafficMeter(10.0, clock, aligned=True)
    late.record(ok=True, output_tokens=1)
    clock.now = 1030.0
    sums.add(_share(late, "r3", config))
    assert sums.due(now=1100.0) == [] and sums.late == 1
