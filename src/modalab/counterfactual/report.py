"""One call that runs the counterfactual analyses of a predictor and collects one long table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from modalab.counterfactual.attributions import (
    ShapleyResult,
    ablation_importance,
    mean_ci,
    perceptual_score,
    predict_split,
    sample_values,
    shapley_values,
)
from modalab.counterfactual.debias import DebiasResult, counterfactual_debias
from modalab.counterfactual.interventions import INTERVENTIONS, intervene
from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit
from modalab.counterfactual.swap import swap_test

__all__ = ["ANALYSES", "COLUMNS", "CounterfactualReport", "analyse", "intervention_effects"]

#: Analyses run by :func:`analyse`, in order.
ANALYSES = ("interventions", "ablation", "perceptual", "shapley", "swap", "debias")
#: Columns of every counterfactual table.
COLUMNS = [
    "analysis",
    "modality",
    "target",
    "class",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "metric",
]


@dataclass
class CounterfactualReport:
    """Results of :func:`analyse`.

    Attributes:
        table: Long table with :data:`COLUMNS`, one row per analysis × modality × target ×
            class × statistic (``class="all"`` pools the classes).
        shapley: The per-sample Shapley values, if computed.
        debias: The debiasing result, if computed.
        settings: The arguments of the analysis (written beside the table).
    """

    table: pd.DataFrame
    shapley: ShapleyResult | None = None
    debias: DebiasResult | None = None
    settings: dict[str, object] = field(default_factory=dict)

    def summary(self) -> pd.DataFrame:
        """The pooled (``class="all"``) rows, pivoted to statistic × modality."""
        pooled = self.table[(self.table["class"] == "all")]
        pooled = pooled[pooled["analysis"] != "interaction"]
        labels = [
            (stat if stat.startswith(analysis) else f"{analysis}:{stat}")
            + (f" ({target})" if target and target != "all" else "")
            for analysis, stat, target in zip(
                pooled["analysis"], pooled["statistic"], pooled["target"]
            )
        ]
        frame = pooled.assign(row=labels)
        return frame.pivot_table(index="row", columns="modality", values="value", sort=False)


def intervention_effects(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    interventions: Sequence[str] = ("remove", "mean", "noise", "permute", "swap"),
    metric: str = "accuracy",
    seed: int = 0,
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """The metric under each intervention on each modality, and its change from the original.

    Returns:
        Long table: statistic ``value`` (the metric under the intervention) and ``effect``
        (intervened minus original, per sample), ``target`` naming the intervention; a row
        with modality ``(none)`` holds the original metric.
    """
    for name in interventions:
        INTERVENTIONS.get(name)  # raises with the valid names
    base = sample_values(
        predict_split(predictor, split.embeddings, split.present, batch_size), split.label, metric
    )
    rows = _rows("interventions", "(none)", "original", "value", base, split.label, confidence)
    for j, m in enumerate(predictor.modalities):
        for k, name in enumerate(interventions):
            out = intervene(split, name, [m], seed=seed + 100 * j + k)
            values = sample_values(
                predict_split(predictor, out.embeddings, out.present, batch_size),
                split.label,
                metric,
            )
            rows += _rows("interventions", m, name, "value", values, split.label, confidence)
            rows += _rows(
                "interventions", m, name, "effect", values - base, split.label, confidence
            )
    frame = pd.DataFrame(rows)
    frame["metric"] = metric
    return frame


def _rows(
    analysis: str,
    modality: str,
    target: str,
    statistic: str,
    values: torch.Tensor,
    label: torch.Tensor,
    confidence: float,
) -> list[dict[str, object]]:
    groups: list[tuple[str, torch.Tensor]] = [("all", torch.ones_like(label, dtype=torch.bool))]
    groups += [(str(c), label == c) for c in sorted(label.unique().tolist())]
    rows = []
    for group, mask in groups:
        mean, low, high = mean_ci(values[mask], confidence)
        rows.append(
            {
                "analysis": analysis,
                "modality": modality,
                "target": target,
                "class": group,
                "statistic": statistic,
                "value": float(mean),
                "ci_low": float(low),
                "ci_high": float(high),
                "n": int(mask.sum()),
            }
        )
    return rows


def analyse(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    analyses: Sequence[str] = ("interventions", "ablation", "perceptual", "shapley", "swap"),
    metric: str = "accuracy",
    seed: int = 0,
    debias_modality: str | None = None,
    debias_alpha: float = 1.0,
    num_permutations: int = 5,
    exact_max: int = 8,
    shapley_permutations: int = 64,
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> CounterfactualReport:
    """Run the chosen counterfactual analyses on cached embeddings.

    Args:
        predictor: The predictor.
        split: Cached embeddings of the analysed split (see
            :func:`~modalab.counterfactual.predictors.encode_dataset`).
        analyses: Any of :data:`ANALYSES`.
        metric: Value function of interventions, ablation and Shapley values.
        seed: Seed of every random intervention.
        debias_modality: The dominant modality for ``debias`` (required by it).
        debias_alpha: Weight of its direct effect.
        num_permutations: Permutations of the perceptual score.
        exact_max: Largest number of modalities with exact Shapley values.
        shapley_permutations: Sampled orderings of Shapley values beyond ``exact_max``.
        confidence: Coverage of the confidence intervals.
        batch_size: Batch size of the head passes.

    Returns:
        The report.

    Raises:
        ValueError: On an unknown analysis, or ``debias`` without ``debias_modality``.
    """
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ValueError(f"Unknown analyses {unknown}; valid: {list(ANALYSES)}.")
    if "debias" in analyses and not debias_modality:
        raise ValueError(
            "The debias analysis needs the dominant modality to correct: pass debias_modality "
            f"(one of {list(predictor.modalities)})."
        )
    tables = []
    shapley = debias = None
    if "interventions" in analyses:
        tables.append(
            intervention_effects(
                predictor,
                split,
                metric=metric,
                seed=seed,
                confidence=confidence,
                batch_size=batch_size,
            )
        )
    if "ablation" in analyses:
        tables.append(ablation_importance(predictor, split, metric, confidence, batch_size))
    if "perceptual" in analyses:
        tables.append(
            perceptual_score(predictor, split, num_permutations, seed, confidence, batch_size)
        )
    if "shapley" in analyses:
        shapley = shapley_values(
            predictor, split, metric, exact_max, shapley_permutations, seed, batch_size
        )
        tables.append(shapley.table(confidence))
    if "swap" in analyses:
        for m in predictor.modalities:
            tables.append(swap_test(predictor, split, m, seed, batch_size))
    if "debias" in analyses:
        assert debias_modality is not None
        debias = counterfactual_debias(predictor, split, debias_modality, debias_alpha, batch_size)
        tables.append(debias.table(confidence))
    table = (
        pd.concat(tables, ignore_index=True)[COLUMNS] if tables else pd.DataFrame(columns=COLUMNS)
    )
    settings: dict[str, object] = {
        "analyses": list(analyses),
        "metric": metric,
        "seed": seed,
        "num_samples": split.num_samples,
        "modalities": list(predictor.modalities),
    }
    return CounterfactualReport(table, shapley, debias, settings)
