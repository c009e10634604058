"""Robustness curves and their summary numbers, computed from the results store.

A curve is a metric (e.g. the fused linear-probe accuracy) against the severity of one
scenario, per method, averaged over seeds. Its summaries are those of
:mod:`modalab.evaluation.robustness`: the normalised area under the curve, MultiBench's
relative robustness (the same area over equally spaced levels) and effective robustness
against a baseline method (the supervised late-fusion baseline, as in MultiBench).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from modalab.evaluation.robustness import (
    area_under_curve,
    effective_robustness,
    relative_robustness,
)
from modalab.scenarios import SCENARIOS

__all__ = ["broadcast_references", "harder_is_higher", "robustness_curves", "robustness_scores"]

_CURVE_KEYS = ["study", "data", "scenario", "severity_key", "method"]


def harder_is_higher(severity_key: str) -> bool:
    """Whether higher values of ``severity_key`` are harder (``scenario.NAME.PARAM`` keys).

    Example:
        >>> harder_is_higher("scenario.missing.rate"), harder_is_higher("scenario.blur.sigma")
        (True, True)
        >>> harder_is_higher("scenario.gaussian_noise.snr_db")
        False
    """
    parts = severity_key.split(".")
    if len(parts) == 3 and parts[0] == "scenario" and parts[1] in SCENARIOS:
        cls = SCENARIOS.get(parts[1])
        if parts[2] == cls.severity_param:
            return cls.harder == "higher"
    return True


def broadcast_references(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of reference runs (severity NaN) repeated at every severity of their scenario.

    A study's reference method (``reference: true``) is run once per seed *without* its
    scenario — a control the scenario cannot act on, e.g. a model without the image under
    the image's absence. Its rows are copied to each finite severity of the other runs of
    the same study, data and scenario label, with their severity key, so that a curve shows
    it as a flat row and a table tests it seed by seed at each severity. Scenario labels
    with no finite severity keep their rows as they are.

    Example:
        >>> rows = pd.DataFrame({"study": "s", "data": "d", "scenario": "missing",
        ...     "severity_key": ["k", "k", ""], "method": ["clip", "clip", "no_image"],
        ...     "severity": [0.0, 1.0, float("nan")], "value": [0.9, 0.5, 0.7]})
        >>> out = broadcast_references(rows)
        >>> out[out.method == "no_image"][["severity", "severity_key", "value"]].values.tolist()
        [[0.0, 'k', 0.7], [1.0, 'k', 0.7]]
    """
    if "severity" not in frame.columns or not frame["severity"].isna().any():
        return frame
    keys = ["study", "data", "scenario"]
    parts = []
    for _, group in frame.groupby(keys, dropna=False, sort=False):
        reference = group[group["severity"].isna()]
        runs = group[group["severity"].notna()]
        if reference.empty or runs.empty:
            parts.append(group)
            continue
        key = runs["severity_key"].iloc[0]
        copies = [
            reference.assign(severity=severity, severity_key=key)
            for severity in dict.fromkeys(runs["severity"])
        ]
        parts.append(pd.concat([runs, *copies]))
    return pd.concat(parts, ignore_index=True)


def robustness_curves(
    frame: pd.DataFrame,
    metric: str = "linear_probe_acc",
    modality: str = "fused",
    condition: str | None = None,
) -> pd.DataFrame:
    """Mean, standard deviation and count over seeds of one metric at each severity.

    Args:
        frame: Rows of the results store (:meth:`ResultsStore.read`).
        metric: Metric name.
        modality: Modality, ``fused``, or a pair/direction.
        condition: Optional condition filter (e.g. ``labels=1``).

    Returns:
        One row per study × data × scenario × method × severity, ordered from clean to hardest,
        with columns ``mean``, ``std`` and ``seeds``; reference runs are shown at every
        severity (:func:`broadcast_references`).
    """
    rows = frame[(frame["metric"] == metric) & (frame["modality"] == modality)]
    rows = broadcast_references(rows)
    if condition is not None:
        rows = rows[rows["condition"] == condition]
    if rows.empty:
        return pd.DataFrame(columns=[*_CURVE_KEYS, "severity", "mean", "std", "seeds"])
    curves = (
        rows.groupby([*_CURVE_KEYS, "severity"], dropna=False)["value"]
        .agg(mean="mean", std="std", seeds="count")
        .reset_index()
    )
    curves["_order"] = [
        s if harder_is_higher(k) else -s for s, k in zip(curves["severity"], curves["severity_key"])
    ]
    curves = curves.sort_values([*_CURVE_KEYS, "_order"]).drop(columns="_order")
    return curves.reset_index(drop=True)


def robustness_scores(curves: pd.DataFrame, baseline: str = "supervised") -> pd.DataFrame:
    """Summary numbers of each curve of :func:`robustness_curves`.

    Args:
        curves: Output of :func:`robustness_curves` (ordered clean → hardest).
        baseline: Method whose curve effective robustness is measured against.

    Returns:
        One row per study × scenario × method: ``clean`` and ``hardest`` values, ``auc``
        (normalised area under the curve over the severity axis), ``relative_robustness``
        (MultiBench, levels spaced ``1 / (L - 1)``) and ``effective_robustness`` (NaN when the
        baseline has no curve at the same levels).
    """
    out = []
    for (study, data, scenario, key), group in curves.groupby(
        ["study", "data", "scenario", "severity_key"], dropna=False, sort=False
    ):
        by_method = {m: g for m, g in group.groupby("method", sort=False)}
        base = by_method.get(baseline)
        for method, g in by_method.items():
            values = g["mean"].to_numpy(dtype=float)
            severities = g["severity"].to_numpy(dtype=float)
            finite = len(values) >= 2 and bool(np.isfinite(severities).all())
            effective = math.nan
            if base is not None and list(base["severity"]) == list(g["severity"]):
                effective = effective_robustness(values, base["mean"].to_numpy(dtype=float))
            out.append(
                {
                    "study": study,
                    "data": data,
                    "scenario": scenario,
                    "severity_key": key,
                    "method": method,
                    "clean": values[0],
                    "hardest": values[-1],
                    "auc": area_under_curve(severities, values) if finite else math.nan,
                    "relative_robustness": (
                        relative_robustness(values) if len(values) >= 2 else math.nan
                    ),
                    "effective_robustness": effective,
                }
            )
    return pd.DataFrame(out)
