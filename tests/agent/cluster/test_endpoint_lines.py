"""What each plan line becomes in the endpoint's Serve application (pure: no cluster)."""

from __future__ import annotations

from plans import gpu_plan, llama_cpp_plan

from quantplan.agent.cluster.endpoint import EndpointOptions, fleet_lines, line_names


def _lines(plan, options=None):  # type: ignore[no-untyped-def]
    options = options or EndpointOptions(surge_percent=0)  # no spare-node lookup: no Ray
    artifacts = {d.scheme: ("/models/x", None) for d in plan.fleet}
    return fleet_lines(plan, options, artifacts)


def test_a_gpu_line_carries_its_gpus_type_and_memory_share_to_its_replicas() -> None:
    plan = gpu_plan(gpus_per_replica=2)  # two replicas of 2 L4 on one g6.24xlarge
    (line,) = _lines(plan)
    config = line.config
    assert (config.gpus, config.accelerator_type, config.gpu_memory_fraction) == (2, "L4", 0.9)
    assert config.options.max_model_len == 1280  # 2 x (512 + 128), as apply starts it
    assert line.replicas == 2 and line.replicas_per_instance == 2


def test_a_partial_offload_line_passes_its_gpu_layers_and_a_cpu_line_asks_for_no_gpu() -> None:
    split = gpu_plan(gpus_per_replica=4, engine="llama.cpp")
    split = split.model_copy(
        update={"fleet": (split.fleet[0].model_copy(update={"gpu_layers": 20}),)}
    )
    (line,) = _lines(split)
    assert (line.config.gpus, line.config.options.gpu_layers) == (4, 20)
    (cpu,) = _lines(llama_cpp_plan())
    assert (cpu.config.gpus, cpu.config.accelerator_type) == (0, None)
    assert cpu.config.options.gpu_layers == -1  # llama-server's default: no GPU layers asked


def test_a_line_is_named_by_what_it_runs_so_a_changed_plan_keeps_the_lines_it_shares() -> None:
    """Names do not follow a line's place in the plan: a line added in front of another leaves
    the other's name (and Serve deployment) alone. A second line of the same kind is numbered;
    a line that answers the endpoint itself (a plan of one line) is named apart, because Serve
    cannot move a deployment between answering the proxy and being called by the ingress."""
    plan = llama_cpp_plan()
    (line,) = plan.fleet
    spot = line.model_copy(update={"pricing": "spot"})
    other = line.model_copy(update={"scheme": "gguf-q8_0"})
    options = EndpointOptions()
    assert line_names(plan, options) == ["gguf-f16-llama-cpp-c7i-xlarge-direct"]
    assert line_names(plan, EndpointOptions(always_ingress=True)) == [
        "gguf-f16-llama-cpp-c7i-xlarge"
    ]
    assert line_names(plan.model_copy(update={"fleet": (other, line, spot)}), options) == [
        "gguf-q8-0-llama-cpp-c7i-xlarge",
        "gguf-f16-llama-cpp-c7i-xlarge",
        "gguf-f16-llama-cpp-c7i-xlarge-2",
    ]
    assert [c.route.deployment for c in _lines(plan)] == line_names(plan, options)
