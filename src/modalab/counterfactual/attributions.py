"""Attributions of a downstream prediction to modalities.

* **Ablation importance** — the metric lost when a modality is removed (marked absent).
* **Perceptual score** (Gat, Schwartz & Schwing, "Perceptual Score: What Data Modalities Does
  Your Model Perceive?", NeurIPS 2021) — the accuracy lost when a modality is permuted across
  samples, averaged over permutations and normalised by the model's accuracy.
* **Modality Shapley values** (Shapley, 1953) — the players are the modalities, the value of a
  coalition ``S`` is the metric of the model that sees only ``S`` (the others absent, as in
  training). Exact by enumerating all ``2^M`` coalitions up to ``exact_max`` modalities, else
  estimated by permutation sampling (Castro, Gómez & Tejada, Computers & OR 2009). Values are
  per sample, so they aggregate per class and carry confidence intervals over samples.
* **Shapley interaction index** for pairs (Grabisch & Roubens, Int. J. Game Theory 1999):
  positive for synergy (the pair is worth more than its parts), negative for redundancy.

The empty coalition is the model evaluated with every modality absent — not a metric of 0 —
so that efficiency holds: the values sum to ``v(all) - v(empty)`` for every sample.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import norm
from torch import Tensor

from modalab.counterfactual.interventions import intervene
from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader

__all__ = [
    "METRICS",
    "CoalitionValues",
    "ShapleyResult",
    "ablation_importance",
    "coalition_values",
    "interaction_weights",
    "mean_ci",
    "perceptual_score",
    "predict_split",
    "sample_values",
    "shapley_from_coalitions",
    "shapley_values",
    "shapley_weights",
]

#: Per-sample value functions: ``accuracy`` (1 if correct else 0) or ``log_prob`` (log
#: probability of the true class, smoother).
METRICS = ("accuracy", "log_prob")


def sample_values(logits: Tensor, label: Tensor, metric: str = "accuracy") -> Tensor:
    """Per-sample value of predictions.

    Args:
        logits: ``[N, C]``.
        label: ``[N]`` true classes.
        metric: ``accuracy`` or ``log_prob``.

    Returns:
        ``[N]`` float64 values; their mean is the metric of the split.

    Example:
        >>> sample_values(torch.tensor([[2.0, 0.0], [2.0, 0.0]]), torch.tensor([0, 1])).tolist()
        [1.0, 0.0]
    """
    if metric == "accuracy":
        return (logits.argmax(dim=1) == label).double()
    if metric == "log_prob":
        return F.log_softmax(logits.double(), dim=1).gather(1, label.view(-1, 1)).squeeze(1)
    raise ValueError(f"Unknown metric {metric!r}; valid: {list(METRICS)}.")


@torch.no_grad()
def predict_split(
    predictor: EmbeddingPredictor,
    embeddings: dict[str, Tensor],
    present: dict[str, Tensor],
    batch_size: int = 4096,
) -> Tensor:
    """Logits ``[N, C]`` of the predictor on cached embeddings, in batches (no state kept)."""
    n = int(next(iter(present.values())).shape[0])
    out = []
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        out.append(
            predictor.predict(
                {m: embeddings[m][rows] for m in predictor.modalities},
                {m: present[m][rows] for m in predictor.modalities},
            ).float()
        )
    return torch.cat(out)


def mean_ci(values: Tensor, confidence: float = 0.95) -> tuple[Tensor, Tensor, Tensor]:
    """Mean over samples (dim 0) with a normal-approximation confidence interval.

    Args:
        values: ``[N, ...]`` per-sample values.
        confidence: Coverage of the interval.

    Returns:
        ``(mean, low, high)``, each shaped like ``values[0]``.

    Example:
        >>> mean, low, high = mean_ci(torch.tensor([0.0, 2.0, 4.0]))
        >>> float(mean), round(float(high - mean), 3)  # 1.96 * 2 / sqrt(3)
        (2.0, 2.263)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}.")
    x = values.double()
    mean = x.mean(dim=0)
    n = x.shape[0]
    if n < 2:
        half = torch.full_like(mean, float("nan"))
    else:
        half = float(norm.ppf(0.5 + confidence / 2)) * x.std(dim=0) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class CoalitionValues:
    """Per-sample values of every coalition of modalities.

    Attributes:
        modalities: The players, in order; coalition ``k`` holds modality ``j`` iff bit ``j``
            of ``k`` is set (``0`` is the empty coalition, ``2^M - 1`` the full one).
        values: ``[N, 2^M]`` float64 per-sample values.
        label: ``[N]`` true classes.
        metric: The value function.
    """

    modalities: tuple[str, ...]
    values: Tensor
    label: Tensor
    metric: str

    def value(self, coalition: Iterable[str]) -> Tensor:
        """Per-sample values ``[N]`` of the coalition of the named modalities."""
        key = sum(1 << self.modalities.index(m) for m in coalition)
        return self.values[:, key]

    @property
    def full(self) -> Tensor:
        """Values ``[N]`` with every modality (as observed)."""
        return self.values[:, -1]

    @property
    def empty(self) -> Tensor:
        """Values ``[N]`` with every modality absent."""
        return self.values[:, 0]


def _coalition_present(
    present: dict[str, Tensor], modalities: Sequence[str], key: int
) -> dict[str, Tensor]:
    """Data presence restricted to the coalition: outside it, a modality is absent."""
    return {m: present[m] & bool((key >> j) & 1) for j, m in enumerate(modalities)}


@torch.no_grad()
def coalition_values(
    predictor: EmbeddingPredictor,
    source: EncodedSplit | MultimodalTensorDataset,
    metric: str = "accuracy",
    batch_size: int = 4096,
) -> CoalitionValues:
    """Evaluate the predictor on every coalition of modalities, per sample.

    With an :class:`EncodedSplit` (cached embeddings) only fusion and head run per coalition.
    With a dataset, the whole model (encoders included) re-runs for each coalition — the
    reference the cache is checked and benchmarked against.

    Args:
        predictor: The predictor.
        source: Cached embeddings, or the raw dataset.
        metric: Value function (see :data:`METRICS`).
        batch_size: Batch size of each pass.

    Returns:
        The per-sample coalition values.
    """
    names = predictor.modalities
    keys = range(1 << len(names))
    if isinstance(source, EncodedSplit):
        columns = [
            sample_values(
                predict_split(
                    predictor,
                    source.embeddings,
                    _coalition_present(source.present, names, k),
                    batch_size,
                ),
                source.label,
                metric,
            )
            for k in keys
        ]
        label = source.label
    else:
        label = source.clean_label
        columns = []
        for k in keys:
            logits = []
            for batch in make_loader(source, batch_size):
                present = _coalition_present(batch.present, names, k)
                logits.append(predictor.predict(predictor.encode(batch), present).float())
            columns.append(sample_values(torch.cat(logits), label, metric))
    return CoalitionValues(tuple(names), torch.stack(columns, dim=1), label, metric)


def shapley_weights(num_players: int) -> Tensor:
    """The linear map ``[2^M, M]`` from coalition values to exact Shapley values.

    ``phi_j = sum_{S not containing j} |S|! (M - |S| - 1)! / M! * (v(S + j) - v(S))``.

    Example:
        >>> v = torch.tensor([[0.0, 1.0, 2.0, 4.0]], dtype=torch.float64)  # v0, v{a}, v{b}, v{ab}
        >>> (v @ shapley_weights(2)).tolist()  # a: (1 + 2) / 2, b: (2 + 3) / 2
        [[1.5, 2.5]]
    """
    m = num_players
    weights = torch.zeros(1 << m, m, dtype=torch.float64)
    for key in range(1 << m):
        size = bin(key).count("1")
        for j in range(m):
            if (key >> j) & 1:
                continue
            w = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            weights[key | (1 << j), j] += w
            weights[key, j] -= w
    return weights


def interaction_weights(num_players: int) -> tuple[list[tuple[int, int]], Tensor]:
    """Pairs and the linear map ``[2^M, P]`` from coalition values to Shapley interactions.

    ``I_ij = sum_{S ⊆ N∖{i,j}} |S|! (M - |S| - 2)! / (M - 1)! * (v(S+ij) - v(S+i) - v(S+j) + v(S))``
    (Grabisch & Roubens, 1999).

    Example:
        >>> pairs, w = interaction_weights(2)
        >>> v = torch.tensor([[0.25, 0.25, 0.25, 1.0]], dtype=torch.float64)  # XOR
        >>> pairs, (v @ w).tolist()
        ([(0, 1)], [[0.75]])
    """
    m = num_players
    pairs = list(itertools.combinations(range(m), 2))
    weights = torch.zeros(1 << m, len(pairs), dtype=torch.float64)
    for p, (i, j) in enumerate(pairs):
        bits = (1 << i) | (1 << j)
        for key in range(1 << m):
            if key & bits:
                continue
            size = bin(key).count("1")
            w = math.factorial(size) * math.factorial(m - size - 2) / math.factorial(m - 1)
            weights[key | bits, p] += w
            weights[key | (1 << i), p] -= w
            weights[key | (1 << j), p] -= w
            weights[key, p] += w
    return pairs, weights


@dataclass
class ShapleyResult:
    """Per-sample modality Shapley values.

    Attributes:
        modalities: The players.
        values: ``[N, M]`` per-sample Shapley values.
        full: ``[N]`` values of the full coalition.
        empty: ``[N]`` values of the empty coalition (every modality absent).
        label: ``[N]`` true classes.
        metric: The value function.
        exact: Whether values are exact (else permutation-sampled).
        pairs: Modality pairs of ``interactions``.
        interactions: ``[N, P]`` per-sample Shapley interaction indices (exact only).
    """

    modalities: tuple[str, ...]
    values: Tensor
    full: Tensor
    empty: Tensor
    label: Tensor
    metric: str
    exact: bool
    pairs: list[tuple[str, str]]
    interactions: Tensor | None = None

    def shares(self) -> dict[str, float]:
        """Each modality's share of the total (mean value / sum of mean values)."""
        mean = self.values.mean(dim=0)
        total = float(mean.sum())
        return {
            m: float(mean[j]) / total if total != 0 else math.nan
            for j, m in enumerate(self.modalities)
        }

    def interaction(self, a: str, b: str) -> float:
        """Mean interaction index of a pair over samples."""
        if self.interactions is None:
            raise ValueError("Interactions are computed with exact Shapley values only.")
        key = tuple(sorted((a, b), key=self.modalities.index))
        return float(self.interactions[:, self.pairs.index(key)].mean())  # type: ignore[arg-type]

    def table(self, confidence: float = 0.95) -> pd.DataFrame:
        """Long table of Shapley values, shares and interactions, overall and per class.

        Columns: ``analysis, modality, target, class, statistic, value, ci_low, ci_high, n``.
        """
        rows: list[dict[str, object]] = []
        groups: list[tuple[str, Tensor]] = [("all", torch.ones_like(self.label, dtype=torch.bool))]
        groups += [(str(c), self.label == c) for c in sorted(self.label.unique().tolist())]
        for group, mask in groups:
            n = int(mask.sum())
            mean, low, high = mean_ci(self.values[mask], confidence)
            total = float(mean.sum())
            for j, m in enumerate(self.modalities):
                rows.append(
                    table_row("shapley", m, "", group, "shapley", mean[j], low[j], high[j], n)
                )
                share = float(mean[j]) / total if total != 0 else math.nan
                rows.append(table_row("shapley", m, "", group, "share", share, None, None, n))
            for name, column in (("full", self.full), ("empty", self.empty)):
                mu, lo, hi = mean_ci(column[mask], confidence)
                rows.append(table_row("shapley", name, "", group, f"v_{name}", mu, lo, hi, n))
            if self.interactions is not None:
                mean, low, high = mean_ci(self.interactions[mask], confidence)
                for p, (a, b) in enumerate(self.pairs):
                    rows.append(
                        table_row(
                            "interaction", a, b, group, "interaction", mean[p], low[p], high[p], n
                        )
                    )
        frame = pd.DataFrame(rows)
        frame["metric"] = self.metric
        return frame


def table_row(
    analysis: str,
    modality: str,
    target: str,
    group: str,
    statistic: str,
    value: float | Tensor,
    low: float | Tensor | None,
    high: float | Tensor | None,
    n: int,
) -> dict[str, object]:
    """One row of a counterfactual table (``None``: no confidence interval)."""

    def f(x: float | Tensor | None) -> float:
        return math.nan if x is None else float(x)

    return {
        "analysis": analysis,
        "modality": modality,
        "target": target,
        "class": group,
        "statistic": statistic,
        "value": f(value),
        "ci_low": f(low),
        "ci_high": f(high),
        "n": n,
    }


def shapley_from_coalitions(values: CoalitionValues) -> ShapleyResult:
    """Exact per-sample Shapley values and pairwise interactions from coalition values."""
    m = len(values.modalities)
    phi = values.values @ shapley_weights(m)
    index_pairs, weights = interaction_weights(m)
    return ShapleyResult(
        modalities=values.modalities,
        values=phi,
        full=values.full,
        empty=values.empty,
        label=values.label,
        metric=values.metric,
        exact=True,
        pairs=[(values.modalities[i], values.modalities[j]) for i, j in index_pairs],
        interactions=values.values @ weights if m >= 2 else None,
    )


def shapley_values(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    metric: str = "accuracy",
    exact_max: int = 8,
    num_permutations: int = 64,
    seed: int = 0,
    batch_size: int = 4096,
) -> ShapleyResult:
    """Per-sample modality Shapley values, exact up to ``exact_max`` modalities.

    Beyond ``exact_max`` modalities, ``num_permutations`` random orderings of the modalities
    (shared by all samples) are walked and each modality is credited with the value it adds
    when it joins; each ordering's credits sum to ``v(all) - v(empty)``, so efficiency still
    holds exactly, and the estimate is unbiased (Castro et al., 2009).

    Args:
        predictor: The predictor.
        split: Cached embeddings of the analysed split.
        metric: Value function (see :data:`METRICS`).
        exact_max: Largest number of modalities solved exactly (``2^M`` coalitions).
        num_permutations: Orderings sampled beyond ``exact_max``.
        seed: Seed of the sampled orderings.
        batch_size: Batch size of the head passes.

    Returns:
        The per-sample Shapley values (and exact pairwise interactions when exact).
    """
    names = predictor.modalities
    if len(names) <= exact_max:
        return shapley_from_coalitions(coalition_values(predictor, split, metric, batch_size))
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be >= 1, got {num_permutations}.")
    generator = torch.Generator().manual_seed(seed)
    cache: dict[int, Tensor] = {}

    def value(key: int) -> Tensor:
        if key not in cache:
            present = _coalition_present(split.present, names, key)
            logits = predict_split(predictor, split.embeddings, present, batch_size)
            cache[key] = sample_values(logits, split.label, metric)
        return cache[key]

    phi = torch.zeros(split.num_samples, len(names), dtype=torch.float64)
    for _ in range(num_permutations):
        key = 0
        for j in torch.randperm(len(names), generator=generator).tolist():
            phi[:, j] += value(key | (1 << j)) - value(key)
            key |= 1 << j
    full_key = (1 << len(names)) - 1
    return ShapleyResult(
        modalities=tuple(names),
        values=phi / num_permutations,
        full=value(full_key),
        empty=value(0),
        label=split.label,
        metric=metric,
        exact=False,
        pairs=[],
    )


def ablation_importance(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    metric: str = "accuracy",
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Metric drop when each modality alone is removed: ``v(all) - v(all without m)``.

    Returns:
        Long table (see :meth:`ShapleyResult.table`) with statistic ``ablation``, per modality,
        overall and per class.
    """
    base = sample_values(
        predict_split(predictor, split.embeddings, split.present, batch_size), split.label, metric
    )
    rows = []
    for m in predictor.modalities:
        out = intervene(split, "remove", [m])
        drop = base - sample_values(
            predict_split(predictor, out.embeddings, out.present, batch_size), split.label, metric
        )
        rows += per_class_rows("ablation", m, "", "ablation", drop, split.label, confidence)
    frame = pd.DataFrame(rows)
    frame["metric"] = metric
    return frame


def perceptual_score(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    num_permutations: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Perceptual score of each modality (Gat et al., NeurIPS 2021).

    ``P_m = (acc - mean_k acc(m permuted by permutation k)) / acc``: the accuracy lost when
    the modality is taken from random other samples, normalised by the model's accuracy. The
    interval is over samples (the normalising accuracy is treated as fixed).

    Returns:
        Long table with statistics ``perceptual_score`` (unnormalised) and
        ``perceptual_score_normalised`` per modality, overall and per class.
    """
    if num_permutations < 1:
        raise ValueError(f"num_permutations must be >= 1, got {num_permutations}.")
    base = sample_values(
        predict_split(predictor, split.embeddings, split.present, batch_size), split.label
    )
    accuracy = float(base.mean())
    rows = []
    for j, m in enumerate(predictor.modalities):
        drops = []
        for k in range(num_permutations):
            out = intervene(split, "permute", [m], seed=seed + 1000 * j + k)
            logits = predict_split(predictor, out.embeddings, out.present, batch_size)
            drops.append(base - sample_values(logits, split.label))
        drop = torch.stack(drops).mean(dim=0)
        rows += per_class_rows(
            "perceptual", m, "", "perceptual_score", drop, split.label, confidence
        )
        scale = 1.0 / accuracy if accuracy > 0 else math.nan
        rows += per_class_rows(
            "perceptual",
            m,
            "",
            "perceptual_score_normalised",
            drop * scale,
            split.label,
            confidence,
        )
    frame = pd.DataFrame(rows)
    frame["metric"] = "accuracy"
    return frame


def per_class_rows(
    analysis: str,
    modality: str,
    target: str,
    statistic: str,
    per_sample: Tensor,
    label: Tensor,
    confidence: float,
) -> list[dict[str, object]]:
    """Table rows of a per-sample statistic: its mean and CI over all samples and per class."""
    rows = []
    groups: list[tuple[str, Tensor]] = [("all", torch.ones_like(label, dtype=torch.bool))]
    groups += [(str(c), label == c) for c in sorted(label.unique().tolist())]
    for group, mask in groups:
        mean, low, high = mean_ci(per_sample[mask], confidence)
        rows.append(
            table_row(
                analysis, modality, target, group, statistic, mean, low, high, int(mask.sum())
            )
        )
    return rows
