"""Partial pooling of calibration classes (planner/pooling.py)."""

from __future__ import annotations

import math

import pytest

from quantplan.catalog.snapshot import CatalogSnapshot
from quantplan.planner.pooling import ClassRatios, pooled_log_means
from quantplan.planner.targets import Workload

KIND = ("kind", "e", "f", "gpu")


def _chain(generation: str, device: str) -> tuple[tuple[str, ...], ...]:
    return (
        ("device", "e", "f", device),
        ("generation", "e", "f", "gpu", generation),
        KIND,
    )


def _ratios(points: dict[tuple[str, str], list[float]]) -> ClassRatios:
    ratios = ClassRatios()
    for (generation, device), values in points.items():
        for value in values:
            ratios.add(_chain(generation, device), value)
    return ratios


def test_a_plain_dict_keeps_each_class_own_mean() -> None:
    means = pooled_log_means({KIND: [1.0, 4.0]})
    assert means[KIND] == pytest.approx(math.log(2.0))


def test_one_point_is_pulled_toward_the_parent_more_than_a_class_with_many() -> None:
    """Repeats of one device spread by about 15 %; a generation seen once at 1.6x and one
    seen five times at 1.4x are both pulled toward the kind, the single point far more (its
    mean is mostly that noise)."""
    ratios = _ratios(
        {
            ("a", "A1"): [0.85, 1.15, 1.0, 0.9, 1.1],
            ("b", "B1"): [1.2, 1.6, 1.4, 1.25, 1.55],
            ("c", "C1"): [0.8, 1.05, 0.9, 1.0, 0.85],
            ("d", "D1"): [1.6],
        }
    )
    means = pooled_log_means(ratios)

    def pull(generation: str) -> float:
        key = ("generation", "e", "f", "gpu", generation)
        own = sum(math.log(v) for v in ratios[key]) / len(ratios[key])
        return (own - means[key]) / (own - means[KIND])

    assert 0 < pull("b") < pull("d") < 1
    assert pull("d") > 2 * pull("b")
    device = ("device", "e", "f", "D1")
    assert means[device] == pytest.approx(means[("generation", "e", "f", "gpu", "d")])


def test_classes_that_truly_differ_keep_their_own_means() -> None:
    """Generations 2x apart with tight repeats inside each: the spread between classes is
    real, so a generation's estimate stays close to its own points."""
    ratios = _ratios(
        {
            ("a", "A1"): [0.50, 0.52, 0.49],
            ("b", "B1"): [2.00, 2.05, 1.95],
            ("c", "C1"): [1.00, 1.02, 0.98],
        }
    )
    means = pooled_log_means(ratios)
    assert math.exp(means[("generation", "e", "f", "gpu", "a")]) == pytest.approx(0.5, rel=0.05)
    assert math.exp(means[("generation", "e", "f", "gpu", "b")]) == pytest.approx(2.0, rel=0.05)


def test_without_repeated_measurements_nothing_is_shrunk() -> None:
    """No device measured twice: the within-class spread is unknown, so every class keeps its
    own mean (the most specific class with evidence decides, as before pooling)."""
    ratios = _ratios({("a", "A1"): [1.0], ("b", "B1"): [2.0]})
    means = pooled_log_means(ratios)
    assert means[("generation", "e", "f", "gpu", "b")] == pytest.approx(math.log(2.0))


def _ratios_without_xiongjiedai(shipped: CatalogSnapshot) -> ClassRatios:
    """The calibration classes of the shipped profiles, XiongjieDai's batch-1 runs (every
    A100 SXM and L40S llama.cpp run, and all but two of the RTX 4090's) left out."""
    from quantplan.planner.estimate import _class_ratios

    held_out = "XiongjieDai/GPU-Benchmarks-on-LLM-Inference (LLaMA 3, May 2024)"
    evidence = [p for p in shipped.profiles if p.source != held_out]
    workload = Workload(requests_per_s=1, input_tokens=1, output_tokens=512)
    return _class_ratios(evidence, shipped, workload)


def test_an_rtx_3080_run_does_not_set_the_a100s_llama_cpp_speed(
    shipped: CatalogSnapshot,
) -> None:
    """Without the source that measured llama.cpp on A100 SXMs, an A100 SXM falls back to its
    own architecture (compute capability 8.0: the A100 PCIe runs of llama.cpp PR #6017), not
    to the consumer Ampere of 8.6 (an RTX 3080 and an RTX 3090 Ti at about 1.5x the default
    roofline) nor to their pooled generation: the A100s run llama.cpp well below the consumer
    cards' share of spec. Pooling moves the A100's estimate toward its parents, but it stays
    below every consumer Ampere run and nearer its own architecture's runs than theirs."""
    from quantplan.planner.estimate import class_multiplier

    ratios = _ratios_without_xiongjiedai(shipped)
    found = class_multiplier(ratios, "llama.cpp", "gguf", shipped.get_hardware("A100-80GB-SXM"))
    assert found is not None
    multiplier, key = found
    assert key == ("architecture", "llama.cpp", "gguf", "gpu", "8.0")
    assert len(ratios[key]) == 2  # PR #6017: one A100 PCIe, and eight
    consumer_ampere = ratios[("architecture", "llama.cpp", "gguf", "gpu", "8.6")]
    assert len(consumer_ampere) == 4  # the RTX 3080 run, PR #6766's three RTX 3090 Ti runs
    assert multiplier < min(consumer_ampere)
    own = sum(math.log(r) for r in ratios[key]) / len(ratios[key])
    consumer = sum(math.log(r) for r in consumer_ampere) / len(consumer_ampere)
    assert abs(math.log(multiplier) - own) < abs(math.log(multiplier) - consumer)


def test_an_unseen_ada_gpu_draws_on_its_architecture_s_gddr_cards_not_the_a100s(
    shipped: CatalogSnapshot,
) -> None:
    """With no L40S run left (XiongjieDai held out), an L40S falls back to its architecture
    (8.9: the RTX 4090 runs of llama.cpp PR #6766), GDDR cards whose llama.cpp ran well above
    the HBM A100s' share of spec bandwidth."""
    from quantplan.planner.estimate import class_multiplier

    ratios = _ratios_without_xiongjiedai(shipped)
    found = class_multiplier(ratios, "llama.cpp", "gguf", shipped.get_hardware("L40S"))
    assert found is not None
    multiplier, key = found
    assert key == ("architecture", "llama.cpp", "gguf", "gpu", "8.9")
    assert len(ratios[key]) == 2  # PR #6766: Llama-3-8B F16 and Q4_0 on an RTX 4090
    hbm = class_multiplier(ratios, "llama.cpp", "gguf", shipped.get_hardware("A100-80GB-SXM"))
    assert hbm is not None and multiplier > hbm[0]
