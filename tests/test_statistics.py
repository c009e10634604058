"""modalab.evaluation.statistics against scipy/statsmodels and brute force on fixed inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from modalab.evaluation import statistics as st

A = np.array([0.612, 0.640, 0.598, 0.661, 0.633, 0.627, 0.655])
B = np.array([0.581, 0.602, 0.590, 0.614, 0.600, 0.633, 0.610])


def test_paired_t_matches_scipy_and_hand_formula() -> None:
    result = st.paired_t_test(A, B)
    reference = stats.ttest_rel(A, B)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    d = A - B
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert result.statistic == pytest.approx(t, rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.t.sf(abs(t), len(d) - 1), rel=1e-10)


def test_wilcoxon_matches_scipy_and_exact_enumeration() -> None:
    result = st.wilcoxon_test(A, B)
    assert result.p_value == pytest.approx(stats.wilcoxon(A, B).pvalue, rel=1e-12)
    # Brute force: every sign assignment of the ranks of |d| (no ties, no zeros here).
    d = A - B
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    total = ranks.sum()
    sums = [
        sum(r for r, s in zip(ranks, signs) if s)
        for signs in itertools.product([0, 1], repeat=len(d))
    ]
    low = min(observed, total - observed)
    p = 2 * np.mean([s <= low for s in sums])
    assert result.p_value == pytest.approx(min(p, 1.0), rel=1e-12)


def test_wilcoxon_five_seeds_cannot_reach_005() -> None:
    result = st.wilcoxon_test([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert result.p_value == pytest.approx(2 / 2**5)


def test_welch_matches_scipy() -> None:
    result = st.welch_test(A[:5], B)
    assert result.p_value == pytest.approx(
        stats.ttest_ind(A[:5], B, equal_var=False).pvalue, rel=1e-12
    )


def test_welch_matches_the_textbook_formula() -> None:
    """Welch (Biometrika 1947): t with Welch–Satterthwaite degrees of freedom, by hand."""
    a, b = np.array([0.61, 0.65, 0.58]), np.array([0.50, 0.52, 0.49, 0.55])
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    assert st.welch_test(a, b).p_value == pytest.approx(2 * stats.t.sf(abs(t), df))
    assert math.isnan(st.welch_test(a[:1], b).p_value)


def test_untestable_inputs_give_nan() -> None:
    assert math.isnan(st.welch_test([0.5, 0.5], [0.5, 0.5]).p_value)
    assert math.isnan(st.paired_t_test([0.5], [0.4]).p_value)
    assert math.isnan(st.paired_t_test([0.5, 0.6], [0.5, 0.6]).p_value)
    assert st.paired_t_test([0.6, 0.7], [0.5, 0.6]).p_value == 0.0  # constant shift
    assert math.isnan(st.wilcoxon_test([0.5, 0.6], [0.5, 0.6]).p_value)
    with pytest.raises(ValueError, match="equal lengths"):
        st.paired_t_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        st.welch_test([1.0, float("nan")], [1.0, 2.0])


def test_compare_seeds_pairs_by_seed_not_by_position() -> None:
    a = {2: 0.70, 0: 0.61, 1: 0.66}
    b = {0: 0.60, 1: 0.64, 2: 0.67}
    result = st.compare_seeds(a, b)
    assert result.test == "paired_t"
    assert result.p_value == pytest.approx(
        stats.ttest_rel([0.61, 0.66, 0.70], [0.60, 0.64, 0.67]).pvalue
    )
    other = st.compare_seeds({0: 0.61, 1: 0.66, 2: 0.70}, {3: 0.60, 4: 0.64, 5: 0.67})
    assert other.test == "welch"
    forced = st.compare_seeds(a, b, test="wilcoxon")
    assert forced.p_value == pytest.approx(
        stats.wilcoxon([0.61, 0.66, 0.70], [0.60, 0.64, 0.67]).pvalue
    )


P = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.060, 0.074, 0.205, 0.212, 0.5])


@pytest.mark.parametrize(("method", "name"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_match_statsmodels(method: st.Correction, name: str) -> None:
    np.testing.assert_allclose(st.adjust_p_values(P, method), multipletests(P, method=name)[1])


def test_holm_and_bh_by_hand() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005])
    order = np.argsort(p)
    m = len(p)
    holm = np.maximum.accumulate([(m - i) * p[j] for i, j in enumerate(order)])
    expected_holm = np.empty(m)
    expected_holm[order] = np.minimum(holm, 1)
    np.testing.assert_allclose(st.adjust_p_values(p, "holm"), expected_holm)
    bh = np.minimum.accumulate([p[j] * m / (i + 1) for i, j in reversed(list(enumerate(order)))])
    expected_bh = np.empty(m)
    expected_bh[order[::-1]] = bh
    np.testing.assert_allclose(st.adjust_p_values(p, "bh"), expected_bh)


def test_corrections_skip_nan_and_keep_shape() -> None:
    p = np.array([[0.01, np.nan], [0.04, 0.03]])
    out = st.adjust_p_values(p, "holm")
    assert out.shape == (2, 2) and math.isnan(out[0, 1])
    np.testing.assert_allclose(
        out[~np.isnan(p)], multipletests([0.01, 0.04, 0.03], method="holm")[1]
    )
    np.testing.assert_array_equal(st.adjust_p_values(P, "none"), P)
    with pytest.raises(ValueError, match="unknown"):
        st.adjust_p_values(P, "bonf")  # type: ignore[arg-type]


def test_wilson_matches_statsmodels() -> None:
    for k, n in [(0, 20), (7, 20), (240, 250), (250, 250)]:
        interval = st.wilson_interval(k, n)
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        assert interval.low == pytest.approx(low, abs=1e-12)
        assert interval.high == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_on_bernoulli(method: str) -> None:
    """Over 300 test sets of 250 Bernoulli(0.7) samples the 90% interval covers p ~90%."""
    rng = np.random.default_rng(1234)
    p, n, reps = 0.7, 250, 300
    covered = 0
    for r in range(reps):
        sample = (rng.random(n) < p).astype(float)
        interval = st.bootstrap_ci(sample, confidence=0.9, n_resamples=1000, method=method, seed=r)  # type: ignore[arg-type]
        covered += interval.contains(p)
    # Binomial sd of the coverage over 300 repetitions is ~0.017: allow about 3 sd.
    assert 0.85 <= covered / reps <= 0.95


def test_bootstrap_width_matches_binomial_error_and_scipy() -> None:
    sample = np.r_[np.ones(180), np.zeros(70)]
    ours = st.bootstrap_ci(sample, n_resamples=4000, method="bca", seed=0)
    ref = stats.bootstrap(
        (sample,), np.mean, n_resamples=4000, method="BCa", random_state=0
    ).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.006)
    assert ours.high == pytest.approx(ref.high, abs=0.006)
    wilson = st.wilson_interval(180, 250)
    assert ours.high - ours.low == pytest.approx(wilson.high - wilson.low, rel=0.1)


def test_bootstrap_over_seeds_narrows_with_more_seeds() -> None:
    rng = np.random.default_rng(0)
    runs = [(rng.random(250) < 0.6).astype(float) for _ in range(5)]
    one = st.bootstrap_ci(runs[0], seed=0)
    five = st.bootstrap_ci(runs, seed=0)
    assert five.estimate == pytest.approx(np.mean([r.mean() for r in runs]))
    # Averaging 5 independent test sets divides the sd by ~sqrt(5).
    ratio = (one.high - one.low) / (five.high - five.low)
    assert 1.8 < ratio < 2.7
    with pytest.raises(ValueError, match="one vector"):
        st.bootstrap_ci(runs, method="bca")


def test_mean_difference_ci_matches_scipy() -> None:
    paired = st.mean_difference_ci(A, B, paired=True)
    ref = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert (paired.low, paired.high) == pytest.approx((ref.low, ref.high), rel=1e-10)
    welch = st.mean_difference_ci(A[:5], B, paired=False)
    ref = stats.ttest_ind(A[:5], B, equal_var=False).confidence_interval(0.95)
    assert (welch.low, welch.high) == pytest.approx((ref.low, ref.high), rel=1e-10)


def test_effect_sizes_by_hand() -> None:
    d = A - B
    assert st.paired_dz(A, B) == pytest.approx(d.mean() / d.std(ddof=1))
    pooled = math.sqrt((A.var(ddof=1) + B.var(ddof=1)) / 2)  # equal n
    assert st.cohens_d(A, B) == pytest.approx((A.mean() - B.mean()) / pooled)
    walsh = [(d[i] + d[j]) / 2 for i in range(len(d)) for j in range(i, len(d))]
    assert st.hodges_lehmann(A, B, paired=True) == pytest.approx(np.median(walsh))
    assert st.hodges_lehmann(A, B, paired=False) == pytest.approx(
        np.median([x - y for x in A for y in B])
    )


def test_degenerate_marks() -> None:
    assert st.degenerate_marks([0.276, 0.276, 0.276]) == st.ZERO_VARIANCE
    assert st.degenerate_marks([0.272, 0.28, 0.276], majority_rate=0.276) == st.COLLAPSED
    assert st.degenerate_marks([0.27, 0.35], majority_rate=0.276) == ""
    assert st.degenerate_marks([0.4, 0.5], predictions=[2, 2, 2, 2]) == st.COLLAPSED
    assert st.degenerate_marks([0.4, 0.5], predictions=[2, 1, 2, 2]) == ""
    assert st.degenerate_marks([0.5]) == ""  # one seed: no variance to judge


def test_format_cell() -> None:
    cell = st.CellStats.of([0.61, 0.64, 0.60])
    assert st.format_cell(cell) == "0.617 ± 0.021"
    cell.p_value, cell.p_adjusted = 0.004, 0.2
    assert st.format_cell(cell, show_p=True) == "0.617 ± 0.021 p_adj=0.200"  # no star
    cell.ci = st.wilson_interval(150, 250)
    assert st.format_cell(cell, show_n=True, show_p=False).endswith("(n=3) [0.538, 0.659]")
    assert st.format_cell(st.CellStats.of([])) == "—"


def test_bootstrap_from_stored_accuracy_equals_bootstrap_of_the_vector() -> None:
    rng = np.random.default_rng(3)
    vector = (rng.random(250) < 0.64).astype(float)
    rebuilt = st.correctness_from_accuracy(float(vector.mean()), 250)
    assert rebuilt.sum() == vector.sum()
    a = st.bootstrap_ci(vector, n_resamples=4000, seed=5)
    b = st.bootstrap_ci(rebuilt, n_resamples=4000, seed=6)
    assert (a.low, a.high) == pytest.approx((b.low, b.high), abs=0.01)


def test_record_samples_flags_a_collapsed_probe() -> None:
    """A probe on constant features predicts one class: top share 1, accuracy = majority rate."""
    import torch

    from modalab.evaluation.features import EvalConfig, FeatureSet, evaluate_representations

    gen = torch.Generator().manual_seed(0)

    def split(n: int) -> FeatureSet:
        label = torch.tensor([0] * (n // 2) + [1] * (n // 4) + [2] * (n - n // 2 - n // 4))
        informative = torch.nn.functional.one_hot(label, 3).float() * 3
        informative += 0.1 * torch.randn(n, 3, generator=gen)
        return FeatureSet(
            features={"a": informative, "b": torch.zeros(n, 3)},
            present={"a": torch.ones(n, dtype=torch.bool), "b": torch.ones(n, dtype=torch.bool)},
            label=label,
            label_observed=torch.ones(n, dtype=torch.bool),
            clean_label=label,
            index=torch.arange(n),
        )

    config = EvalConfig(l2_grid=[0.01], retrieval_ks=[1], record_samples=True)
    records = evaluate_representations(split(80), split(40), split(120), 3, config)
    value = {(r.metric, r.modality): r.value for r in records if r.condition == "labels=1"}
    assert value[("linear_probe_n_test", "b")] == 120
    assert value[("linear_probe_majority_rate", "b")] == pytest.approx(0.5)
    assert value[("linear_probe_top_share", "b")] == 1.0
    acc_b = value[("linear_probe_acc", "b")]
    assert st.degenerate_marks([acc_b], majority_rate=0.5) == st.COLLAPSED
    assert value[("linear_probe_acc", "a")] == 1.0
    assert value[("linear_probe_top_share", "a")] == pytest.approx(0.5)
    assert st.degenerate_marks([1.0], majority_rate=0.5) == ""
    off = evaluate_representations(split(80), split(40), split(120), 3, EvalConfig(l2_grid=[0.01]))
    assert not any(r.metric == "linear_probe_n_test" for r in off)
