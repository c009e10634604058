"""One call that runs the counterfactual analyses of a predictor and collects one long table."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

import pandas as pd

from modalab.counterfactual.attributions import (
    ShapleyResult,
    ablation_importance,
    coalition_values,
    per_class_rows,
    perceptual_score,
    predict_split,
    sample_values,
    shapley_values,
    table_row,
)
from modalab.counterfactual.debias import DebiasResult, counterfactual_debias
from modalab.counterfactual.interventions import INTERVENTIONS, intervene
from modalab.counterfactual.missing import cached_missing_rate_curve
from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit
from modalab.counterfactual.swap import swap_test
from modalab.registry import Registry

__all__ = [
    "ANALYSES",
    "COLUMNS",
    "AnalysisSettings",
    "CounterfactualReport",
    "analyse",
    "intervention_effects",
]

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
        """The pooled (``class="all"``) rows, pivoted to statistic × modality.

        Interactions and ``views_present`` subsets of several modalities are left out.
        """
        pooled = self.table[(self.table["class"] == "all")]
        subsets = (pooled["statistic"] == "subset") & pooled["modality"].str.contains(
            "+", regex=False
        )
        pooled = pooled[(pooled["analysis"] != "interaction") & ~subsets]
        labels = [
            (stat if stat.startswith(analysis) else f"{analysis}:{stat}")
            + (f" ({target})" if target and target != "all" else "")
            for analysis, stat, target in zip(
                pooled["analysis"], pooled["statistic"], pooled["target"]
            )
        ]
        frame = pooled.assign(row=labels)
        return frame.pivot_table(index="row", columns="modality", values="value", sort=False)


@dataclass(frozen=True)
class AnalysisSettings:
    """The options of :func:`analyse` that the analyses read (see its arguments)."""

    metric: str = "accuracy"
    seed: int = 0
    debias_modality: str | None = None
    debias_alpha: float = 1.0
    num_permutations: int = 5
    exact_max: int = 8
    shapley_permutations: int = 64
    confidence: float = 0.95
    batch_size: int = 4096
    missing_rates: tuple[float, ...] = tuple(r / 10 for r in range(10))


class _Tabled(Protocol):
    def table(self, confidence: float) -> pd.DataFrame: ...


#: What an analysis returns: its long table, or a result with ``table(confidence)`` (kept on
#: the report under the analysis' name, e.g. ``shapley``, ``debias``).
AnalysisResult: TypeAlias = pd.DataFrame | _Tabled | list[pd.DataFrame]

#: Analyses ``(predictor, split, settings) -> AnalysisResult``, run by :func:`analyse` in
#: registration order.
Analysis: TypeAlias = Callable[[EmbeddingPredictor, EncodedSplit, AnalysisSettings], AnalysisResult]
ANALYSES: Registry[Analysis] = Registry("analysis")


def intervention_effects(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    interventions: Sequence[str] | None = None,
    metric: str = "accuracy",
    seed: int = 0,
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """The metric under each intervention on each modality, and its change from the original.

    ``interventions`` defaults to every registered one
    (:data:`~modalab.counterfactual.interventions.INTERVENTIONS`, in registration order).

    Returns:
        Long table: statistic ``value`` (the metric under the intervention) and ``effect``
        (intervened minus original, per sample), ``target`` naming the intervention; a row
        with modality ``(none)`` holds the original metric.
    """
    interventions = list(INTERVENTIONS) if interventions is None else list(interventions)
    for name in interventions:
        INTERVENTIONS.get(name)  # raises with the valid names
    base = sample_values(
        predict_split(predictor, split.embeddings, split.present, batch_size), split.label, metric
    )
    rows = per_class_rows(
        "interventions", "(none)", "original", "value", base, split.label, confidence
    )
    for j, m in enumerate(predictor.modalities):
        for k, name in enumerate(interventions):
            out = intervene(split, name, [m], seed=seed + 100 * j + k)
            values = sample_values(
                predict_split(predictor, out.embeddings, out.present, batch_size),
                split.label,
                metric,
            )
            rows += per_class_rows(
                "interventions", m, name, "value", values, split.label, confidence
            )
            rows += per_class_rows(
                "interventions", m, name, "effect", values - base, split.label, confidence
            )
    frame = pd.DataFrame(rows)
    frame["metric"] = metric
    return frame


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
    missing_rates: Sequence[float] = AnalysisSettings.missing_rates,
) -> CounterfactualReport:
    """Run the chosen counterfactual analyses on cached embeddings.

    Args:
        predictor: The predictor.
        split: Cached embeddings of the analysed split (see
            :func:`~modalab.counterfactual.predictors.encode_dataset`).
        analyses: Any of :data:`ANALYSES` (run in its registration order).
        metric: Value function of interventions, ablation and Shapley values.
        seed: Seed of every random intervention.
        debias_modality: The dominant modality for ``debias`` (required by it).
        debias_alpha: Weight of its direct effect.
        num_permutations: Permutations of the perceptual score.
        exact_max: Largest number of modalities with exact Shapley values.
        shapley_permutations: Sampled orderings of Shapley values beyond ``exact_max``.
        confidence: Coverage of the confidence intervals.
        batch_size: Batch size of the head passes.
        missing_rates: Drop rates of the ``missing_rate`` curve.

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
    settings = AnalysisSettings(
        metric,
        seed,
        debias_modality,
        debias_alpha,
        num_permutations,
        exact_max,
        shapley_permutations,
        confidence,
        batch_size,
        tuple(missing_rates),
    )
    tables: list[pd.DataFrame] = []
    results: dict[str, object] = {}
    for name in (a for a in ANALYSES if a in analyses):
        out = ANALYSES.get(name)(predictor, split, settings)
        if isinstance(out, pd.DataFrame):
            tables.append(out)
        elif isinstance(out, list):
            tables += out
        else:
            tables.append(out.table(confidence))
            results[name] = out
    table = (
        pd.concat(tables, ignore_index=True)[COLUMNS] if tables else pd.DataFrame(columns=COLUMNS)
    )
    record: dict[str, object] = {
        "analyses": list(analyses),
        "metric": metric,
        "seed": seed,
        "num_samples": split.num_samples,
        "modalities": list(predictor.modalities),
    }
    shapley, debias = results.get("shapley"), results.get("debias")
    assert shapley is None or isinstance(shapley, ShapleyResult)
    assert debias is None or isinstance(debias, DebiasResult)
    return CounterfactualReport(table, shapley, debias, record)


@ANALYSES.register("interventions")
def _interventions(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Every registered intervention on each modality (:func:`intervention_effects`)."""
    return intervention_effects(
        p, s, metric=o.metric, seed=o.seed, confidence=o.confidence, batch_size=o.batch_size
    )


@ANALYSES.register("ablation")
def _ablation(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Each modality removed: the drop of the metric."""
    return ablation_importance(p, s, o.metric, o.confidence, o.batch_size)


@ANALYSES.register("perceptual")
def _perceptual(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Perceptual score: each modality permuted across samples (Gat et al., 2021)."""
    return perceptual_score(p, s, o.num_permutations, o.seed, o.confidence, o.batch_size)


@ANALYSES.register("shapley")
def _shapley(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Per-sample Shapley values of the modalities (exact, or sampled orderings)."""
    return shapley_values(p, s, o.metric, o.exact_max, o.shapley_permutations, o.seed, o.batch_size)


@ANALYSES.register("swap")
def _swap(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Each modality swapped with that of another class: how often the prediction follows."""
    return [swap_test(p, s, m, o.seed, o.batch_size) for m in p.modalities]


@ANALYSES.register("debias")
def _debias(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Counterfactual debiasing: the dominant modality's direct effect subtracted."""
    assert o.debias_modality is not None
    return counterfactual_debias(p, s, o.debias_modality, o.debias_alpha, o.batch_size)


@ANALYSES.register("missing_rate")
def _missing_rate(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """Accuracy with each modality dropped at random (:func:`cached_missing_rate_curve`).

    One ``fused`` row per rate (``target``) and statistic: ``accuracy`` and ``missing_fraction``
    (share of the ``(sample, modality)`` entries absent; each sample keeps one at least).
    """
    points = cached_missing_rate_curve(p, s, o.missing_rates, o.seed)
    frame = pd.DataFrame(
        table_row(
            "missing_rate",
            "fused",
            f"{q.rate:g}",
            "all",
            stat,
            getattr(q, stat),
            None,
            None,
            s.num_samples,
        )
        for q in points
        for stat in ("accuracy", "missing_fraction")
    )
    return frame.assign(metric="accuracy")


@ANALYSES.register("views_present")
def _views_present(p: EmbeddingPredictor, s: EncodedSplit, o: AnalysisSettings) -> AnalysisResult:
    """The metric with exactly ``k`` of the ``M`` modalities present, for every subset.

    Statistic ``subset`` per non-empty subset (modality ``a+b``, ``target`` ``"k of M"``; mean
    and CI over samples, per class), and per ``k`` the ``min``, ``mean`` and ``max`` over the
    ``C(M, k)`` subsets (modality ``fused``, class ``all``).
    """
    names, values = p.modalities, coalition_values(p, s, o.metric, o.batch_size).values
    rows: list[dict[str, object]] = []
    for k in range(len(names), 0, -1):
        target, scores = f"{k} of {len(names)}", []
        for subset in itertools.combinations(range(len(names)), k):
            column = values[:, sum(1 << j for j in subset)]
            label = "+".join(names[j] for j in subset)
            rows += per_class_rows(
                "views_present", label, target, "subset", column, s.label, o.confidence
            )
            scores.append(float(column.mean()))
        mean = sum(scores) / len(scores)
        for stat, value in (("min", min(scores)), ("mean", mean), ("max", max(scores))):
            rows.append(
                table_row(
                    "views_present", "fused", target, "all", stat, value, None, None, s.num_samples
                )
            )
    return pd.DataFrame(rows).assign(metric=o.metric)
