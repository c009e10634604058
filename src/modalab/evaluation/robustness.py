"""Robustness summaries of a metric-vs-severity curve.

* ``area_under_curve``: trapezoidal area with severities rescaled to ``[0, 1]`` (a mean
  level of performance over the severity range).
* ``relative_robustness``: MultiBench's definition (Liang et al., "MultiBench: Multiscale
  Benchmarks for Multimodal Representation Learning", NeurIPS 2021 Datasets and Benchmarks),
  the trapezoidal area under the performance curve over imperfection levels spaced 0.1 apart
  (``eval_scripts/robustness.py`` of the MultiBench repository). Here the spacing defaults to
  ``1 / (L - 1)`` so that any number of levels spans ``[0, 1]``; with MultiBench's 11 levels
  both agree, and ``spacing=0.1`` reproduces its code for any number of levels.
* ``effective_robustness``: MultiBench's definition, after Taori et al., "Measuring Robustness
  to Natural Distribution Shifts in Image Classification" (NeurIPS 2020): the performance in
  excess of the late-fusion baseline's curve shifted to start at the method's clean
  performance, ``sum_l f(l) - (b(l) + f(0) - b(0))``.
* ``maxmin_normalize``: MultiBench reports both numbers max–min normalised across the methods
  compared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "area_under_curve",
    "effective_robustness",
    "maxmin_normalize",
    "relative_robustness",
]


def _curve(severities: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(severities, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(
            f"A robustness curve needs as many severities as values (at least two); got "
            f"{x.size} severities and {y.size} values."
        )
    order = np.argsort(x, kind="stable")
    return x[order], y[order]


def area_under_curve(severities: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoidal area under ``values`` vs ``severities`` rescaled to ``[0, 1]``.

    Example:
        >>> area_under_curve([0, 10, 20], [1.0, 0.5, 0.0])
        0.5
    """
    x, y = _curve(severities, values)
    span = x[-1] - x[0]
    if span <= 0:
        raise ValueError("The severities of a robustness curve must not all be equal.")
    return float(np.trapezoid(y, (x - x[0]) / span))


def relative_robustness(values: Sequence[float], spacing: float | None = None) -> float:
    """MultiBench relative robustness: area under performance over equally spaced levels.

    Args:
        values: Performance at increasing, equally spaced imperfection levels (clean first).
        spacing: Distance between levels; ``None`` uses ``1 / (L - 1)`` (the levels span
            ``[0, 1]``), ``0.1`` is MultiBench's code for any number of levels.

    Returns:
        ``sum_i (v_i + v_{i+1}) / 2 * spacing``.

    Example:
        >>> round(relative_robustness([0.9, 0.7, 0.5]), 6)
        0.7
        >>> round(relative_robustness([0.9, 0.7, 0.5], spacing=0.1), 6)
        0.14
    """
    y = np.asarray(values, dtype=float)
    if y.ndim != 1 or y.size < 2:
        raise ValueError("relative_robustness needs at least two levels.")
    step = 1 / (y.size - 1) if spacing is None else float(spacing)
    return float(((y[:-1] + y[1:]) / 2).sum() * step)


def effective_robustness(values: Sequence[float], baseline: Sequence[float]) -> float:
    """MultiBench effective robustness against a baseline (late fusion) curve.

    Args:
        values: The method's performance at each imperfection level (clean first).
        baseline: The baseline's performance at the same levels.

    Returns:
        ``sum_l values[l] - (baseline[l] + values[0] - baseline[0])``.

    Example:
        >>> round(effective_robustness([0.9, 0.8, 0.7], [0.8, 0.6, 0.4]), 6)
        0.3
    """
    f = np.asarray(values, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if f.shape != b.shape or f.ndim != 1 or f.size == 0:
        raise ValueError(
            f"effective_robustness needs curves at the same levels; got {f.size} and {b.size}."
        )
    return float(np.sum(f - (b + f[0] - b[0])))


def maxmin_normalize(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores rescaled to ``[0, 1]`` across methods, as MultiBench reports them.

    Example:
        >>> maxmin_normalize({"a": 1.0, "b": 3.0, "c": 2.0})
        {'a': 0.0, 'b': 1.0, 'c': 0.5}
    """
    values = np.asarray(list(scores.values()), dtype=float)
    low, high = values.min(), values.max()
    if high == low:
        return {k: 0.0 for k in scores}
    return {k: float((v - low) / (high - low)) for k, v in scores.items()}
