"""Robustness curves and summaries from store rows, against hand-computed values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from modalab.experiments.curves import robustness_curves, robustness_scores


def _frame() -> pd.DataFrame:
    rows = []
    # accuracy per (method, snr, seed); snr: lower is harder
    values = {
        "clip": {30.0: [0.9, 0.8], 5.0: [0.7, 0.7], -5.0: [0.5, 0.3]},
        "supervised": {30.0: [0.95, 0.95], 5.0: [0.6, 0.6], -5.0: [0.3, 0.3]},
    }
    for method, curve in values.items():
        for snr, seeds in curve.items():
            for seed, value in enumerate(seeds):
                for modality, v in (("fused", value), ("image", value / 2)):
                    rows.append(
                        {
                            "study": "s",
                            "data": "shapes",
                            "scenario": "gaussian_noise",
                            "severity_key": "scenario.gaussian_noise.snr_db",
                            "method": method,
                            "severity": snr,
                            "seed": seed,
                            "metric": "linear_probe_acc",
                            "modality": modality,
                            "condition": "labels=1",
                            "value": v,
                        }
                    )
    return pd.DataFrame(rows)


def test_curves_average_seeds_and_order_clean_to_hardest() -> None:
    curves = robustness_curves(_frame())
    clip = curves[curves.method == "clip"]
    assert clip["severity"].tolist() == [30.0, 5.0, -5.0]  # lower SNR is harder
    assert clip["mean"].tolist() == pytest.approx([0.85, 0.7, 0.4])
    assert clip["std"].iloc[2] == pytest.approx(math.sqrt(0.02))  # sample std of 0.5, 0.3
    assert set(clip["seeds"]) == {2}
    image = robustness_curves(_frame(), modality="image")
    assert image[image.method == "clip"]["mean"].tolist() == pytest.approx([0.425, 0.35, 0.2])


def test_scores_match_hand_computation() -> None:
    scores = robustness_scores(robustness_curves(_frame())).set_index("method")
    clip = [0.85, 0.7, 0.4]
    sup = [0.95, 0.6, 0.3]
    assert scores.loc["clip", "clean"] == pytest.approx(0.85)
    assert scores.loc["clip", "hardest"] == pytest.approx(0.4)
    assert scores.loc["clip", "relative_robustness"] == pytest.approx(
        ((0.85 + 0.7) / 2 + (0.7 + 0.4) / 2) / 2
    )
    # severities -5, 5, 30 rescaled to [0, 1]: widths 10/35 and 25/35
    auc = (0.4 + 0.7) / 2 * 10 / 35 + (0.7 + 0.85) / 2 * 25 / 35
    assert scores.loc["clip", "auc"] == pytest.approx(auc)
    shifted = [s + clip[0] - sup[0] for s in sup]
    assert scores.loc["clip", "effective_robustness"] == pytest.approx(
        sum(c - s for c, s in zip(clip, shifted))
    )
    assert scores.loc["supervised", "effective_robustness"] == pytest.approx(0.0)


def test_a_reference_run_is_a_flat_curve_at_every_severity() -> None:
    frame = _frame()
    control = frame[(frame.method == "supervised") & (frame.severity == 30.0)].assign(
        method="image_only", severity=math.nan, severity_key=""
    )
    control["value"] = [0.6, 0.3, 0.8, 0.4]  # fused/image of seed 0, then seed 1
    curves = robustness_curves(pd.concat([frame, control], ignore_index=True))
    flat = curves[curves.method == "image_only"]
    assert flat["severity"].tolist() == [30.0, 5.0, -5.0]
    assert flat["mean"].tolist() == pytest.approx([0.7, 0.7, 0.7])  # fused: 0.6, 0.8
    assert set(flat["severity_key"]) == {"scenario.gaussian_noise.snr_db"}
    scores = robustness_scores(curves).set_index("method")
    assert scores.loc["image_only", "relative_robustness"] == pytest.approx(0.7)
    # effective robustness against supervised (0.95, 0.6, 0.3): a flat curve beats the drop
    assert scores.loc["image_only", "effective_robustness"] > 0
