"""Pure logic of applying plans: refusals, replica naming and diffs, cost and error arithmetic.
No Ray, no engines. The launcher configs are tested in test_launcher.py."""

from __future__ import annotations

import pytest
from plans import default_model_plan, llama_cpp_plan, seed_snapshot

from quantplan.agent.cluster.deployment_state import (
    DeploymentState,
    ReplicaRecord,
    diff,
    plan_hash,
    replica_specs,
    serve_shape,
)
from quantplan.agent.cluster.measure import (
    PointEstimate,
    ReplicaMeasurement,
    compare,
    cost_by_node,
    cost_line,
    estimate_measured_point,
    usd_per_million,
)
from quantplan.agent.cluster.validation import (
    catalog_refusals,
    cluster_refusals,
    toolchain_refusals,
)
from quantplan.errors import QuantplanError
from quantplan.planner.plan import InstanceRef


def test_plan_that_cannot_fit_is_refused_with_every_reason() -> None:
    original = llama_cpp_plan()
    bigger = original.fleet[0].model_copy(update={"replicas": 3, "instances": 3})
    plan = original.model_copy(update={"fleet": (bigger,)})
    reasons = cluster_refusals(plan, ["c7i.xlarge", "c7i.large"])
    assert reasons == [
        "3 replica(s) need 3 node(s) of c7i.xlarge; the cluster has 1 alive "
        "(it offers: c7i.large x1, c7i.xlarge x1)"
    ]
    assert cluster_refusals(original, ["c7i.xlarge"]) == []
    missing = toolchain_refusals(plan, set())
    assert missing == ["toolchain llama-cpp is not installed (run `quantplan toolchain install "
                       "llama-cpp`)"]  # fmt: skip
    assert toolchain_refusals(plan, {"llama-cpp"}) == [
        "llama-server (engine llama.cpp) is not built (run `quantplan toolchain install llama-cpp`)"
    ]
    assert toolchain_refusals(plan, {"llama-cpp", "llama-server"}) == []
    assert catalog_refusals(original, seed_snapshot()) == []


def test_infeasible_plan_is_refused() -> None:
    plan = default_model_plan().model_copy(update={"feasible": False, "fleet": ()})
    assert "not feasible" in catalog_refusals(plan, seed_snapshot())[0]


def _tampered(**fields: object):  # type: ignore[no-untyped-def]
    plan = llama_cpp_plan()
    return plan.model_copy(update={"fleet": (plan.fleet[0].model_copy(update=fields),)})


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"scheme": "gguf-q9_9"}, "fleet[0]: unknown scheme 'gguf-q9_9'"),
        ({"engine": "rm -rf ~"}, "fleet[0]: unknown engine 'rm -rf ~'; quantplan serves with"),
        ({"model": "Llama-3.1-8B"}, "fleet[0]: serves model 'Llama-3.1-8B', but the plan is"),
        ({"method": "gptq"}, "is a gguf scheme, but the plan says 'gptq'"),
        ({"engine": "vllm"}, "the catalog lists no cpu kernel for"),
        ({"hardware": "H100"}, "in the catalog, not 'H100' x0"),
        ({"instance": InstanceRef(cloud="aws", name="x1.huge", region="us-east-1")},
         "unknown instance type 'aws/x1.huge/us-east-1'"),
        ({"replicas": 10**9, "instances": 10**9}, "apply runs at most 10,000"),
        ({"instances": 7}, "1 replicas at 1 per instance do not make 7 instances"),
    ],
)  # fmt: skip
def test_plans_that_do_not_match_the_catalog_are_refused(fields: dict, reason: str) -> None:
    reasons = catalog_refusals(_tampered(**fields), seed_snapshot())
    assert any(reason in r for r in reasons), reasons


def test_replicas_start_with_the_plans_slots_and_context() -> None:
    # llama-server ran 4 slots of 2,048 tokens whatever the plan said; the replica now gets
    # the plan's operating concurrency as slots and twice its request shape as context.
    plan = llama_cpp_plan()
    deployment = plan.fleet[0]
    spec = replica_specs(plan, "demo")[0]
    shape = serve_shape(spec)
    assert shape["parallel_slots"] == deployment.metrics.concurrency
    workload = plan.targets.workload
    needed = 2 * (workload.input_tokens + workload.output_tokens)
    assert shape["max_model_len"] >= max(512, needed) and shape["max_model_len"] % 256 == 0
    assert shape["max_model_len"] < max(512, needed) + 256


def test_same_plan_gives_same_replicas_and_an_empty_diff() -> None:
    plan = default_model_plan()
    wanted = replica_specs(plan, "demo")
    assert [s.replica_id for s in wanted] == [s.replica_id for s in replica_specs(plan, "demo")]
    state = DeploymentState(
        name="demo",
        plan_hash=plan_hash(plan),
        replicas={
            s.replica_id: ReplicaRecord(
                spec=s,
                node_id="n",
                base_url="http://127.0.0.1:1",
                served_model="m",
                pid=1,
                artifact_path="/a",
            )
            for s in wanted
        },
    )
    alive = set(state.replicas)
    assert diff(wanted, state, alive).unchanged
    # A replica that stopped answering is started again; a plan with one more is a diff of one.
    assert len(diff(wanted, state, set()).add) == len(wanted)
    more = plan.fleet[0].replicas + 1
    grown = plan.model_copy(
        update={"fleet": (plan.fleet[0].model_copy(update={"replicas": more}),)}
    )
    grown_diff = diff(replica_specs(grown, "demo"), state, alive)
    assert [s.replica_id for s in grown_diff.add] == [wanted[0].replica_id[:-1] + str(more)]
    assert grown_diff.describe()[0].startswith("+ ")
    assert plan_hash(grown) != plan_hash(plan)


def measurement(replica: str, node: str, tps: float, total: float) -> ReplicaMeasurement:
    return ReplicaMeasurement(
        replica_id=replica,
        node_id=node,
        instance_type="c7i.xlarge",
        scheme="gguf-f16",
        engine="llama.cpp",
        usd_per_hour=0.18,
        concurrency=4,
        output_tokens_per_s=tps,
        total_tokens_per_s=total,
        ttft_p95_ms=200.0,
        run_id=f"run-{replica}",
    )


def test_cost_per_token_per_replica_node_and_plan() -> None:
    assert usd_per_million(0.18, 0) is None
    assert usd_per_million(3.6, 1000) == pytest.approx(1.0)
    replicas = [measurement("a", "n1", 50, 150), measurement("b", "n2", 25, 75)]
    assert replicas[0].usd_per_million_output_tokens == pytest.approx(0.18 / (50 * 3600) * 1e6)
    plan = cost_line("plan", replicas)
    assert plan.usd_per_hour == pytest.approx(0.36)
    assert plan.usd_per_million_tokens == pytest.approx(0.36 / (225 * 3600) * 1e6)
    assert [line.key for line in cost_by_node(replicas)] == ["n1", "n2"]


def test_predicted_vs_measured_errors() -> None:
    deployment = default_model_plan().fleet[0]
    predicted = deployment.metrics.output_tokens_per_s.value
    rows = {c.metric: c for c in compare(deployment, [measurement("a", "n1", predicted / 2, 1)])}
    assert rows["output_tokens_per_s"].error_pct == pytest.approx(-50.0)
    assert rows["usd_per_million_output_tokens"].error_pct == pytest.approx(100.0)
    assert compare(deployment, []) == []


def test_a_measurement_is_compared_with_the_estimate_for_its_own_point() -> None:
    """A replica planned for another concurrency than it was benchmarked at is judged against
    the estimate for what was measured, not the plan's figure for its operating point."""
    deployment = default_model_plan().fleet[0]
    assert deployment.metrics.concurrency != 4  # the plan's point is not the benchmark's
    point = PointEstimate(concurrency=4, output_tokens_per_s=80.0, ttft_p95_ms=250.0, basis="b")
    a, b = measurement("a", "n1", 60, 1), measurement("b", "n2", 100, 1)
    rows = {c.metric: c for c in compare(deployment, [a, b], {a.run_id: point, b.run_id: point})}
    assert rows["output_tokens_per_s"].predicted == 80.0
    assert rows["output_tokens_per_s"].error_pct == 0.0  # the mean of 60 and 100
    assert rows["ttft_p95_ms"].error_pct == pytest.approx(-20.0)  # 200 measured
    assert {(c.predicted_concurrency, c.measured_concurrency, c.basis) for c in rows.values()} == {
        (4, 4, "b")
    }
    # A replica without an estimate: the whole deployment falls back to the plan's figures.
    fallback = compare(deployment, [a, b], {a.run_id: point})
    assert {c.predicted_concurrency for c in fallback} == {deployment.metrics.concurrency}


def test_the_estimate_for_a_measured_point_leaves_the_apply_s_own_runs_out() -> None:
    snapshot = seed_snapshot()
    measured = next(
        p
        for p in snapshot.profiles
        if p.engine == "llama.cpp" and p.hardware == "H200" and p.concurrency == 4 and p.run_id
    )
    run = measured.run_id or ""
    alone = estimate_measured_point(run, 4, snapshot, exclude_runs=set())
    held_out = estimate_measured_point(run, 4, snapshot, exclude_runs={run})
    assert alone is not None and held_out is not None
    assert alone.concurrency == held_out.concurrency == 4
    # With its own rows as evidence the estimate is pinned by them; left out, it is a prediction
    # from the other profiles alone.
    assert alone.basis == "published or measured, same setting"
    assert held_out.output_tokens_per_s != pytest.approx(alone.output_tokens_per_s, rel=1e-3)
    assert held_out.ttft_p95_ms is not None and held_out.ttft_p95_ms > 0
    assert estimate_measured_point(run, 3, snapshot, exclude_runs=set()) is None  # no such level
    assert estimate_measured_point("no-such-run", 4, snapshot, exclude_runs=set()) is None


def test_an_apply_benchmark_is_judged_as_served_against_its_setting_s_served_curve() -> None:
    """An apply's profile of a setting the seed measured through llama-server on an H200 is
    estimated from those served rows, not converted as if it were an engine-loop run (that
    gave 10,717 tok/s against 1,777 measured at 64 requests)."""
    from quantplan.catalog.vocabulary import QUANTPLAN_BENCH_SOURCE

    snapshot = seed_snapshot()
    served = next(
        p
        for p in snapshot.profiles
        if (p.model, p.scheme, p.hardware, p.concurrency)
        == ("SmolLM2-135M-Instruct", "gguf-f16", "H200", 64)
        and p.details.get("served")
    )
    applied = served.model_copy(
        update={"source": QUANTPLAN_BENCH_SOURCE, "run_id": "apply-run", "details": {}}
    )
    snapshot = snapshot.model_copy(update={"profiles": (*snapshot.profiles, applied)})
    estimate = estimate_measured_point("apply-run", 64, snapshot, exclude_runs={"apply-run"})
    assert estimate is not None
    assert estimate.output_tokens_per_s == pytest.approx(served.output_tokens_per_s, rel=0.05)


def test_cpu_replicas_are_benchmarked_at_4_and_gpu_replicas_at_the_plan_s_concurrency() -> None:
    from quantplan.agent.cluster.apply import CPU_BENCH_CONCURRENCY, bench_concurrency

    cpu = default_model_plan().fleet[0]
    assert cpu.accelerator_count == 0 and cpu.metrics.concurrency > CPU_BENCH_CONCURRENCY
    assert bench_concurrency(cpu) == CPU_BENCH_CONCURRENCY
    assert bench_concurrency(cpu, cap=2) == 2
    metrics = cpu.metrics.model_copy(update={"concurrency": 64})
    gpu = cpu.model_copy(update={"accelerator_count": 1, "metrics": metrics})
    assert bench_concurrency(gpu) == 64  # a GPU replica owns its GPU: the operating point
    assert bench_concurrency(gpu, cap=4) == 4
    assert bench_concurrency(gpu, cap=1000) == 64  # never beyond what the plan runs


def test_catalog_schemes_map_to_quantizer_options() -> None:
    from quantplan.agent.cluster.jobs import quantize_options_for_scheme

    assert quantize_options_for_scheme("gguf", "gguf-q4_k_m")["type"] == "Q4_K_M"
    assert quantize_options_for_scheme("awq", "awq-w4a16-g64") == {
        "scheme": "W4A16",
        "group_size": 64,
    }
    with pytest.raises(QuantplanError, match="do not know how"):
        quantize_options_for_scheme("gptq", "gptq-fp8")


def test_a_broken_deployment_state_file_is_one_clear_error(tmp_path, monkeypatch) -> None:
    from quantplan.agent.cluster.deployment_state import all_states, load_state, states_dir

    monkeypatch.setenv("QUANTPLAN_DATA_DIR", str(tmp_path))
    states_dir().mkdir(parents=True)
    (states_dir() / "demo.json").write_text('{"name": "demo", "replicas": [1]}')
    with pytest.raises(QuantplanError, match=r"deployment state .* cannot be read"):
        load_state("demo")
    with pytest.raises(QuantplanError, match="cannot be read"):
        all_states()
