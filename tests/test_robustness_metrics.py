"""Robustness summaries and representation diagnostics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from modalab.evaluation.diagnostics import (
    alignment,
    effective_rank,
    modality_gap,
    representation_diagnostics,
    uniformity,
)
from modalab.evaluation.robustness import (
    area_under_curve,
    effective_robustness,
    maxmin_normalize,
    relative_robustness,
)


def test_effective_rank_of_a_known_spectrum() -> None:
    s = torch.tensor([3.0, 2.0, 1.0, 0.0])
    q1, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)))
    q2, _ = torch.linalg.qr(torch.randn(4, 4, generator=torch.Generator().manual_seed(1)))
    x = q1[:, :4] @ torch.diag(s) @ q2.t()
    p = [3 / 6, 2 / 6, 1 / 6]
    expected = math.exp(-sum(pi * math.log(pi) for pi in p))
    assert effective_rank(x, center=False) == pytest.approx(expected, rel=1e-6)
    assert effective_rank(torch.eye(5), center=False) == pytest.approx(5.0)
    rank_one = torch.outer(torch.arange(1.0, 9.0), torch.tensor([1.0, -2.0, 0.5]))
    assert effective_rank(rank_one) == pytest.approx(1.0)


def test_alignment_values() -> None:
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(0))
    assert alignment(x, x) == 0.0
    assert alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-12)  # normalised first
    assert alignment(x, -x) == pytest.approx(4.0)  # ||u - (-u)||^2 = 4
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    assert alignment(a, b) == pytest.approx((2 + 0 + 4) / 3)
    present = torch.tensor([True, True, False])
    assert alignment(a, b, present_a=present) == pytest.approx(1.0)
    assert math.isnan(alignment(a, b, present_a=torch.zeros(3, dtype=torch.bool)))


def test_uniformity_matches_a_double_loop() -> None:
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(2)).double()
    z = x / x.norm(dim=1, keepdim=True)
    terms = [
        math.exp(-2 * float((z[i] - z[j]).pow(2).sum()))
        for i in range(7)
        for j in range(7)
        if i != j
    ]
    assert uniformity(x) == pytest.approx(math.log(sum(terms) / len(terms)), rel=1e-6)
    # Blocks of rows (including a ragged last block and blocks of one row) change nothing.
    for block in (1, 2, 3, 6, 7, 100):
        assert uniformity(x, block=block) == pytest.approx(uniformity(x), rel=1e-12)


def test_uniformity_in_blocks_equals_the_all_pairs_formula_on_many_rows() -> None:
    x = torch.randn(1500, 16, generator=torch.Generator().manual_seed(3))
    z = torch.nn.functional.normalize(x.double(), dim=1)
    sq = torch.pdist(z).pow(2)  # every pair at once: the N^2 computation it replaces
    reference = float(torch.logsumexp(-2 * sq, 0) - math.log(sq.numel()))
    assert uniformity(x, block=128) == pytest.approx(reference, rel=1e-10)
    present = torch.rand(1500, generator=torch.Generator().manual_seed(4)) > 0.3
    sq = torch.pdist(z[present]).pow(2)
    reference = float(torch.logsumexp(-2 * sq, 0) - math.log(sq.numel()))
    assert uniformity(x, present) == pytest.approx(reference, rel=1e-10)


def test_modality_gap_is_the_centroid_distance_on_the_sphere() -> None:
    a = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # normalised: e1, e2 → centroid (0.5, 0.5)
    b = torch.tensor([[-1.0, 0.0], [-3.0, 0.0], [9.0, 9.0]])
    present_b = torch.tensor([True, True, False])  # centroid (-1, 0)
    assert modality_gap(a, b, present_b=present_b) == pytest.approx(math.hypot(1.5, 0.5))
    assert modality_gap(a, a) == 0.0


def test_representation_diagnostics_records() -> None:
    x = torch.randn(20, 4, generator=torch.Generator().manual_seed(0))
    present = {"a": torch.ones(20, dtype=torch.bool), "b": torch.ones(20, dtype=torch.bool)}
    records = representation_diagnostics({"a": x, "b": x}, {"a": x, "b": x}, present)
    by_name = {(r.metric, r.modality): r.value for r in records}
    assert by_name[("alignment", "a|b")] == 0.0
    assert by_name[("modality_gap", "a|b")] == 0.0
    assert by_name[("effective_rank", "a")] == pytest.approx(effective_rank(x))


def _multibench_relative(values: list[float]) -> float:
    """MultiBench eval_scripts/robustness.py relative_robustness_helper, restated."""
    area = 0.0
    for i in range(len(values) - 1):
        area += (values[i] + values[i + 1]) * 0.1 / 2
    return area


def test_relative_robustness_is_multibench_area() -> None:
    curve = [0.9, 0.88, 0.85, 0.8, 0.7, 0.6, 0.5, 0.45, 0.4, 0.35, 0.3]  # 11 levels
    assert relative_robustness(curve) == pytest.approx(_multibench_relative(curve))
    short = [0.9, 0.6, 0.3]
    assert relative_robustness(short, spacing=0.1) == pytest.approx(_multibench_relative(short))
    assert relative_robustness(short) == pytest.approx((0.75 + 0.45) / 2)


def test_effective_robustness_against_a_shifted_baseline() -> None:
    baseline = [0.8, 0.6, 0.4, 0.2]
    # a method that is the baseline shifted up by 0.1 has zero effective robustness
    assert effective_robustness([0.9, 0.7, 0.5, 0.3], baseline) == pytest.approx(0.0)
    # a flat curve keeps 0.2, 0.4, 0.6 above the shifted baseline at levels 1-3
    assert effective_robustness([0.9, 0.9, 0.9, 0.9], baseline) == pytest.approx(1.2)
    with pytest.raises(ValueError, match="same levels"):
        effective_robustness([0.9, 0.8], baseline)


def test_area_under_curve_and_normalisation() -> None:
    severities = np.array([0.0, 5.0, 10.0, 30.0])
    values = 1 - severities / 30  # a straight line: area 0.5 on [0, 1]
    assert area_under_curve(severities, values) == pytest.approx(0.5)
    assert area_under_curve(severities[::-1], values[::-1]) == pytest.approx(0.5)
    assert maxmin_normalize({"x": 2.0, "y": 4.0}) == {"x": 0.0, "y": 1.0}
