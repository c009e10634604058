"""Statistics of results tables: tests over seeds, multiple-comparison corrections, intervals.

Pure functions of numbers (NumPy/SciPy/statsmodels); nothing here knows about runs, stores or
methods. Reports and the study tables call these so that every table is computed the same way.

- **Tests over seeds.** When two methods share seeds (same data, same scenario draws) their
  per-seed values are *paired*: :func:`paired_t_test` (``scipy.stats.ttest_rel``) and
  :func:`wilcoxon_test` (signed-rank, ``scipy.stats.wilcoxon``). Otherwise :func:`welch_test`
  (``scipy.stats.ttest_ind(equal_var=False)``). :func:`compare_seeds` pairs by seed
  automatically.
- **Corrections within a table.** :func:`adjust_p_values` with ``holm`` (Holm 1979, family-wise
  error) or ``bh`` (Benjamini & Hochberg 1995, false discovery rate), via
  ``statsmodels.stats.multitest.multipletests``; NaN p-values (untestable cells) are left out
  of the family and stay NaN.
- **Intervals.** :func:`bootstrap_ci` over test samples (per-sample correctness vectors;
  percentile or BCa, Efron 1987), :func:`wilson_interval` for one accuracy (Wilson 1927),
  :func:`mean_difference_ci` (t interval of a mean difference, paired or Welch).
- **Effect sizes.** :func:`cohens_d` (pooled sd), :func:`paired_dz` (mean difference / sd of
  differences), :func:`hodges_lehmann` (median of pairwise differences or of Walsh averages).
- **Degenerate cells.** :func:`degenerate_marks` flags zero variance across seeds and a
  collapsed classifier (accuracy at the majority-class rate, or one class predicted).
- **Cells.** :class:`CellStats` and :func:`format_cell`: ``mean ± std (n) [lo, hi] p marks``.

Example:
    >>> a = [0.61, 0.64, 0.60, 0.66, 0.63]
    >>> b = [0.58, 0.60, 0.59, 0.61, 0.60]
    >>> round(paired_t_test(a, b).p_value, 4)
    0.0085
    >>> adjust_p_values([0.01, 0.04, 0.03], "holm").round(3).tolist()
    [0.03, 0.06, 0.06]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

Correction = Literal["holm", "bh", "none"]
#: Marks of degenerate cells and their meaning (printed as a legend under tables).
ZERO_VARIANCE = "†"
COLLAPSED = "‡"
DEGENERATE_LEGEND = (
    f"{ZERO_VARIANCE}: zero variance across seeds (no test possible); "
    f"{COLLAPSED}: collapsed classifier (accuracy at the majority-class rate or one class "
    "predicted)."
)


@dataclass(frozen=True)
class SeedTest:
    """Outcome of a two-sided test.

    Attributes:
        test: ``paired_t``, ``wilcoxon`` or ``welch``.
        statistic: The test statistic (NaN when untestable).
        p_value: Two-sided p-value (NaN when untestable: too few values, or no spread at all).
        n: Number of pairs (paired tests) or of values in the smaller group (Welch).
    """

    test: str
    statistic: float
    p_value: float
    n: int


@dataclass(frozen=True)
class Interval:
    """A confidence interval.

    Attributes:
        low: Lower bound.
        high: Upper bound.
        estimate: The point estimate.
        confidence: Coverage level, e.g. 0.95.
        method: How it was computed (``percentile``, ``bca``, ``wilson``, ``t``).
    """

    low: float
    high: float
    estimate: float
    confidence: float
    method: str

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]``."""
        return self.low <= value <= self.high


def _vector(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=float).ravel()
    if np.isnan(array).any():
        raise ValueError(f"{name} contains NaN; drop missing seeds before testing.")
    return array


def _untestable(test: str, n: int) -> SeedTest:
    return SeedTest(test, math.nan, math.nan, n)


def paired_t_test(a: ArrayLike, b: ArrayLike) -> SeedTest:
    """Two-sided paired t-test of ``a - b`` (``scipy.stats.ttest_rel``).

    Args:
        a: Values of one method, shape ``[n]``, in the order of ``b`` (same seeds).
        b: Values of the other method, shape ``[n]``.

    Returns:
        The test; NaN p-value with fewer than 2 pairs or identical differences of 0; p = 0
        when every difference is the same non-zero number (no spread, certain sign).

    Example:
        >>> round(paired_t_test([1.0, 2.0, 3.5], [0.5, 1.0, 2.0]).p_value, 4)
        0.0742
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"Paired values need equal lengths, got {len(x)} and {len(y)}.")
    if len(x) < 2:
        return _untestable("paired_t", len(x))
    diff = x - y
    if np.allclose(diff, diff[0], rtol=0.0, atol=1e-12):
        if abs(diff[0]) <= 1e-12:
            return _untestable("paired_t", len(x))
        return SeedTest("paired_t", math.copysign(math.inf, diff[0]), 0.0, len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(x, y)
    return SeedTest("paired_t", float(result.statistic), float(result.pvalue), len(x))


def wilcoxon_test(a: ArrayLike, b: ArrayLike) -> SeedTest:
    """Two-sided Wilcoxon signed-rank test of ``a - b`` (``scipy.stats.wilcoxon``).

    With n pairs the smallest attainable two-sided p is ``2 / 2**n`` (0.0625 for 5 seeds):
    the test cannot reach 0.05 with fewer than 6 seeds, which a table should say.

    Args:
        a: Values of one method, shape ``[n]`` (same seeds as ``b``).
        b: Values of the other method, shape ``[n]``.

    Returns:
        The test (exact distribution for small n without ties, as scipy chooses); NaN when
        fewer than 2 pairs or every difference is zero.

    Example:
        >>> wilcoxon_test([1.0, 2.0, 3.5, 4.0], [0.5, 1.0, 2.0, 3.0]).p_value
        0.125
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"Paired values need equal lengths, got {len(x)} and {len(y)}.")
    diff = x - y
    if len(x) < 2 or np.all(np.abs(diff) <= 1e-12):
        return _untestable("wilcoxon", len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = stats.wilcoxon(x, y)
    return SeedTest("wilcoxon", float(result.statistic), float(result.pvalue), len(x))


def welch_test(a: ArrayLike, b: ArrayLike) -> SeedTest:
    """Two-sided Welch t-test (unequal variances; ``scipy.stats.ttest_ind(equal_var=False)``).

    Args:
        a: Values of one method, shape ``[n_a]``.
        b: Values of the other, shape ``[n_b]``.

    Returns:
        The test; NaN with fewer than 2 values a side or no spread in either.

    Example:
        >>> round(welch_test([0.5, 0.7, 0.6], [0.9, 0.8, 0.85]).p_value, 4)
        0.0316
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    n = min(len(x), len(y))
    if n < 2 or (np.var(x) == 0 and np.var(y) == 0):
        return _untestable("welch", n)
    with warnings.catch_warnings():  # near-identical values: scipy warns, p is still defined
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(x, y, equal_var=False)
    return SeedTest("welch", float(result.statistic), float(result.pvalue), n)


TESTS = {"paired_t": paired_t_test, "wilcoxon": wilcoxon_test, "welch": welch_test}


def compare_seeds(
    a: Mapping[int, float],
    b: Mapping[int, float],
    test: Literal["auto", "paired_t", "wilcoxon", "welch"] = "auto",
) -> SeedTest:
    """Test ``a`` against ``b`` given as seed → value; pairs by seed when seeds are shared.

    Args:
        a: Per-seed values of one method (a dict or a pandas Series indexed by seed).
        b: Per-seed values of the reference.
        test: ``auto``: the paired t-test over the shared seeds when both sides have the same
            seeds (at least 2), else Welch over all values; or a named test (paired tests use
            the shared seeds only).

    Returns:
        The test.

    Example:
        >>> compare_seeds({0: 0.7, 1: 0.8, 2: 0.75}, {0: 0.6, 1: 0.7, 2: 0.6}).test
        'paired_t'
        >>> compare_seeds({0: 0.7, 1: 0.8}, {5: 0.6, 6: 0.7}).test
        'welch'
    """
    if test not in ("auto", *TESTS):
        raise ValueError(f"test={test!r} is unknown; use 'auto' or one of {sorted(TESTS)}.")
    shared = sorted(set(a) & set(b))
    if test == "auto":
        test = "paired_t" if set(a) == set(b) and len(shared) >= 2 else "welch"
    if test == "welch":
        return welch_test(list(a.values()), list(b.values()))
    return TESTS[test]([a[s] for s in shared], [b[s] for s in shared])


def adjust_p_values(p_values: ArrayLike, method: Correction = "holm") -> NDArray[np.float64]:
    """Correct a family of p-values for multiple comparisons (NaN entries stay NaN).

    Args:
        p_values: The p-values of one table (any shape; NaN = untested cell, not counted).
        method: ``holm`` (Holm–Bonferroni step-down, controls the family-wise error rate),
            ``bh`` (Benjamini–Hochberg step-up, controls the false discovery rate) or ``none``.

    Returns:
        Adjusted p-values, same shape, capped at 1.

    Example:
        >>> adjust_p_values([0.01, float("nan"), 0.04, 0.03], "bh").round(3).tolist()
        [0.03, nan, 0.04, 0.04]
    """
    from statsmodels.stats.multitest import multipletests

    names = {"holm": "holm", "bh": "fdr_bh"}
    if method not in (*names, "none"):
        raise ValueError(f"method={method!r} is unknown; use 'holm', 'bh' or 'none'.")
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel().copy()
    valid = ~np.isnan(flat)
    if ((flat[valid] < 0) | (flat[valid] > 1)).any():
        raise ValueError("p-values must lie in [0, 1].")
    if method != "none" and valid.any():
        flat[valid] = multipletests(flat[valid], method=names[method])[1]
    return flat.reshape(p.shape)


# ------------------------------------------------------------------------------ intervals
def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence} must lie in (0, 1).")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval of a proportion (an accuracy on ``n`` test samples).

    Wilson, "Probable inference, the law of succession, and statistical inference",
    JASA 1927. Unlike the normal (Wald) interval it stays inside [0, 1] and keeps its
    coverage near 0 and 1.

    Args:
        successes: Correct predictions.
        n: Test samples.
        confidence: Coverage level.

    Returns:
        The interval around ``successes / n``.

    Example:
        >>> i = wilson_interval(80, 100)
        >>> round(i.low, 4), round(i.high, 4)
        (0.7112, 0.8666)
    """
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"Need 0 <= successes <= n and n > 0, got {successes} of {n}.")
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half), p, confidence, "wilson")


def bootstrap_ci(
    correct: ArrayLike | Sequence[ArrayLike],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    method: Literal["percentile", "bca"] = "percentile",
    seed: int = 0,
) -> Interval:
    """Bootstrap interval of an accuracy (or any mean) by resampling test samples.

    One vector: the test samples of one run are resampled with replacement. Several vectors
    (one per seed, possibly of different test sets): each is resampled on its own (a
    stratified bootstrap) and the statistic is the mean of the per-seed means — the
    interval of the table's mean-over-seeds due to the finite test sets.

    Args:
        correct: Per-sample values, shape ``[n]`` (e.g. 0/1 correctness), or a sequence of
            such vectors / an array ``[seeds, n]``.
        confidence: Coverage level.
        n_resamples: Bootstrap resamples.
        method: ``percentile`` or ``bca`` (bias-corrected and accelerated, Efron, JASA 1987;
            one vector only).
        seed: Seed of the resampling.

    Returns:
        The interval around the observed statistic.

    Example:
        >>> i = bootstrap_ci([1] * 80 + [0] * 20, seed=0)
        >>> round(i.estimate, 2), 0.70 < i.low < 0.74, 0.86 < i.high < 0.89
        (0.8, True, True)
    """
    if n_resamples < 100:
        raise ValueError(f"n_resamples={n_resamples} is too small; use at least 100.")
    _z(confidence)
    groups = _groups(correct)
    rng = np.random.default_rng(seed)
    estimate = float(np.mean([g.mean() for g in groups]))
    draws = np.zeros(n_resamples)
    for g in groups:
        idx = rng.integers(0, len(g), size=(n_resamples, len(g)))
        draws += g[idx].mean(axis=1)
    draws /= len(groups)
    alpha = (1 - confidence) / 2
    if method == "percentile":
        low, high = np.quantile(draws, [alpha, 1 - alpha])
        return Interval(float(low), float(high), estimate, confidence, "percentile")
    if method != "bca":
        raise ValueError(f"method={method!r} is unknown; use 'percentile' or 'bca'.")
    if len(groups) != 1:
        raise ValueError("method='bca' takes one vector; use 'percentile' for several seeds.")
    x = groups[0]
    share = float(np.mean(draws < estimate) + 0.5 * np.mean(draws == estimate))
    share = min(max(share, 1 / (2 * n_resamples)), 1 - 1 / (2 * n_resamples))
    z0 = float(stats.norm.ppf(share))
    jack = (x.sum() - x) / (len(x) - 1)  # leave-one-out means
    d = jack.mean() - jack
    denom = 6 * (np.sum(d**2) ** 1.5)
    accel = float(np.sum(d**3) / denom) if denom > 0 else 0.0
    qs = []
    for a in (alpha, 1 - alpha):
        za = float(stats.norm.ppf(a))
        qs.append(float(stats.norm.cdf(z0 + (z0 + za) / (1 - accel * (z0 + za)))))
    low, high = np.quantile(draws, qs)
    return Interval(float(low), float(high), estimate, confidence, "bca")


def correctness_from_accuracy(accuracy: float, n: int) -> NDArray[np.float64]:
    """A 0/1 correctness vector with ``round(accuracy * n)`` ones out of ``n``.

    The bootstrap of a mean of 0/1 values depends only on the count of ones: this vector
    stands in for the per-sample record of a stored accuracy whose test-set size is known
    (``eval.record_samples=true`` stores ``linear_probe_n_test``).

    Example:
        >>> correctness_from_accuracy(0.75, 4).tolist()
        [1.0, 1.0, 1.0, 0.0]
    """
    if n < 1 or not 0 <= accuracy <= 1:
        raise ValueError(f"Need n >= 1 and an accuracy in [0, 1], got {accuracy} on {n}.")
    ones = round(accuracy * n)
    return np.r_[np.ones(ones), np.zeros(n - ones)]


def _groups(correct: ArrayLike | Sequence[ArrayLike]) -> list[NDArray[np.float64]]:
    if isinstance(correct, np.ndarray) and correct.ndim == 2:
        groups = [np.asarray(row, dtype=float) for row in correct]
    elif isinstance(correct, Sequence) and correct and np.ndim(correct[0]) == 1:
        groups = [np.asarray(g, dtype=float).ravel() for g in correct]
    else:
        groups = [np.asarray(correct, dtype=float).ravel()]
    if any(len(g) < 2 for g in groups):
        raise ValueError("Each vector of per-sample values needs at least 2 samples.")
    if any(np.isnan(g).any() for g in groups):
        raise ValueError("Per-sample values contain NaN.")
    return groups


def mean_difference_ci(
    a: ArrayLike, b: ArrayLike, paired: bool, confidence: float = 0.95
) -> Interval:
    """Student t interval of ``mean(a) - mean(b)`` (paired: of the differences; else Welch).

    Args:
        a: Values of one method, shape ``[n_a]``.
        b: Values of the reference, shape ``[n_b]`` (``n_a`` when paired, same seed order).
        paired: Pair by position.
        confidence: Coverage level.

    Returns:
        The interval (NaN bounds with fewer than 2 values a side).

    Example:
        >>> i = mean_difference_ci([2.0, 3.0, 4.0], [1.0, 1.5, 2.5], paired=True)
        >>> round(i.estimate, 3), round(i.low, 3), round(i.high, 3)
        (1.333, 0.616, 2.05)
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    _z(confidence)
    q = 0.5 + confidence / 2
    if paired:
        if x.shape != y.shape:
            raise ValueError(f"Paired values need equal lengths, got {len(x)} and {len(y)}.")
        diff = x - y
        estimate = float(diff.mean()) if len(diff) else math.nan
        if len(diff) < 2:
            return Interval(math.nan, math.nan, estimate, confidence, "t")
        half = float(stats.t.ppf(q, len(diff) - 1) * diff.std(ddof=1) / math.sqrt(len(diff)))
        return Interval(estimate - half, estimate + half, estimate, confidence, "t")
    estimate = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
    if len(x) < 2 or len(y) < 2:
        return Interval(math.nan, math.nan, estimate, confidence, "t")
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = math.sqrt(va + vb)
    if se == 0:
        return Interval(estimate, estimate, estimate, confidence, "t")
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))  # Welch–Satterthwaite
    half = float(stats.t.ppf(q, dof) * se)
    return Interval(estimate - half, estimate + half, estimate, confidence, "t")


# ---------------------------------------------------------------------------- effect sizes
def cohens_d(a: ArrayLike, b: ArrayLike) -> float:
    """Cohen's d: ``(mean(a) - mean(b)) / pooled sd`` (ddof=1 variances; NaN when undefined).

    Example:
        >>> round(cohens_d([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]), 3)
        1.0
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if len(x) < 2 or len(y) < 2:
        return math.nan
    pooled = ((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2)
    if pooled == 0:
        return math.nan
    return float((x.mean() - y.mean()) / math.sqrt(pooled))


def paired_dz(a: ArrayLike, b: ArrayLike) -> float:
    """Paired effect size d_z: mean of the differences / their sd (ddof=1; NaN when undefined).

    Example:
        >>> round(paired_dz([2.0, 3.0, 4.0], [1.0, 1.5, 2.5]), 3)
        4.619
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"Paired values need equal lengths, got {len(x)} and {len(y)}.")
    diff = x - y
    if len(diff) < 2 or diff.std(ddof=1) == 0:
        return math.nan
    return float(diff.mean() / diff.std(ddof=1))


def hodges_lehmann(a: ArrayLike, b: ArrayLike, paired: bool) -> float:
    """Hodges–Lehmann shift estimate of ``a`` relative to ``b``.

    Paired: the median of the Walsh averages ``(d_i + d_j) / 2, i <= j`` of the differences
    (the estimate that goes with the signed-rank test); unpaired: the median of all pairwise
    differences ``a_i - b_j`` (with the rank-sum test). Hodges & Lehmann, Ann. Math. Stat. 1963.

    Example:
        >>> hodges_lehmann([2.0, 3.0, 4.0], [1.0, 1.5, 2.5], paired=True)
        1.375
        >>> hodges_lehmann([3.0, 4.0], [1.0, 2.0], paired=False)
        2.0
    """
    x, y = _vector(a, "a"), _vector(b, "b")
    if not len(x) or not len(y):
        return math.nan
    if paired:
        if x.shape != y.shape:
            raise ValueError(f"Paired values need equal lengths, got {len(x)} and {len(y)}.")
        d = x - y
        i, j = np.triu_indices(len(d))
        return float(np.median((d[i] + d[j]) / 2))
    return float(np.median(np.subtract.outer(x, y)))


# ------------------------------------------------------------------------- degenerate cells
def degenerate_marks(
    values: ArrayLike,
    majority_rate: float | None = None,
    predictions: ArrayLike | None = None,
    atol: float = 1e-9,
    tolerance: float = 0.005,
) -> str:
    """Marks of a degenerate cell: zero variance across seeds, or a collapsed classifier.

    Args:
        values: Per-seed values of the cell (accuracies for the collapse check).
        majority_rate: Share of the most frequent class in the evaluated split; a cell whose
            every seed is within ``tolerance`` of it is marked collapsed (the classifier has
            learnt the prior, not the task).
        predictions: Predicted classes of one run (any shape); collapsed when a single class
            accounts for every prediction.
        atol: Spread below which the seeds count as identical.
        tolerance: Distance to the majority rate that counts as "at" it.

    Returns:
        ``""``, :data:`ZERO_VARIANCE`, :data:`COLLAPSED` or both.

    Example:
        >>> degenerate_marks([0.276, 0.276, 0.276], majority_rate=0.276)
        '†‡'
        >>> degenerate_marks([0.61, 0.64, 0.60], majority_rate=0.276)
        ''
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    marks = ""
    if len(x) > 1 and float(np.ptp(x)) <= atol:
        marks += ZERO_VARIANCE
    collapsed = False
    if majority_rate is not None and len(x):
        collapsed = bool(np.all(np.abs(x - majority_rate) <= tolerance))
    if predictions is not None:
        predicted = np.asarray(predictions).ravel()
        collapsed = collapsed or (len(predicted) > 0 and len(np.unique(predicted)) == 1)
    return marks + (COLLAPSED if collapsed else "")


# ------------------------------------------------------------------------------- the cells
@dataclass
class CellStats:
    """Everything a table cell may show.

    Attributes:
        mean: Mean over seeds.
        std: Sample standard deviation over seeds (ddof=1; NaN with one seed).
        n: Seeds.
        ci: Confidence interval (bootstrap over test samples, Wilson, or t over seeds).
        p_value: Uncorrected p-value against the reference (NaN: none / untestable).
        p_adjusted: p-value corrected within the table (NaN: none).
        marks: Degenerate-cell marks (:func:`degenerate_marks`).
    """

    mean: float
    std: float
    n: int
    ci: Interval | None = None
    p_value: float = math.nan
    p_adjusted: float = math.nan
    marks: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, values: ArrayLike, majority_rate: float | None = None) -> CellStats:
        """Mean, std, n and degenerate marks of per-seed values (NaN dropped)."""
        x = np.asarray(values, dtype=float).ravel()
        x = x[~np.isnan(x)]
        if not len(x):
            return cls(math.nan, math.nan, 0)
        std = float(x.std(ddof=1)) if len(x) > 1 else math.nan
        return cls(float(x.mean()), std, len(x), marks=degenerate_marks(x, majority_rate))


def significance_stars(p_value: float, alpha: Sequence[float] = (0.05, 0.01, 0.001)) -> str:
    """``*``, ``**`` or ``***`` for p below each level of ``alpha``; empty otherwise or for NaN.

    Example:
        >>> significance_stars(0.003), significance_stars(0.2), significance_stars(float("nan"))
        ('**', '', '')
    """
    if math.isnan(p_value):
        return ""
    return "*" * sum(p_value < a for a in alpha)


def format_cell(
    cell: CellStats,
    digits: int = 3,
    show_n: bool = False,
    show_ci: bool = True,
    show_p: bool = False,
    stars: bool = True,
) -> str:
    """Render a cell: ``mean ± std (n=5) [lo, hi] p=0.012 * †``.

    Stars are those of the *corrected* p-value when there is one, else of the raw p-value.

    Args:
        cell: The statistics.
        digits: Decimals.
        show_n: Append the number of seeds.
        show_ci: Append the interval when the cell has one.
        show_p: Append the p-value (corrected when available, written ``p_adj=``).
        stars: Append significance stars.

    Returns:
        The text (``—`` for a cell without values).

    Example:
        >>> c = CellStats(0.6123, 0.0214, 5, Interval(0.58, 0.64, 0.6123, 0.95, "t"),
        ...               p_value=0.004, p_adjusted=0.02)
        >>> format_cell(c, show_n=True, show_p=True)
        '0.612 ± 0.021 (n=5) [0.580, 0.640] p_adj=0.020 *'
        >>> format_cell(CellStats.of([0.276, 0.276, 0.276], majority_rate=0.276))
        '0.276 ± 0.000 †‡'
    """
    if cell.n == 0 or math.isnan(cell.mean):
        return "—"
    f = f"{{:.{digits}f}}"
    text = f.format(cell.mean)
    if not math.isnan(cell.std):
        text += " ± " + f.format(cell.std)
    if show_n:
        text += f" (n={cell.n})"
    if show_ci and cell.ci is not None and not math.isnan(cell.ci.low):
        text += f" [{f.format(cell.ci.low)}, {f.format(cell.ci.high)}]"
    p = cell.p_adjusted if not math.isnan(cell.p_adjusted) else cell.p_value
    if show_p and not math.isnan(p):
        name = "p_adj" if not math.isnan(cell.p_adjusted) else "p"
        text += f" {name}={p:.3f}"
    if stars:
        text += (" " + significance_stars(p)) if significance_stars(p) else ""
    if cell.marks:
        text += " " + cell.marks
    return text
