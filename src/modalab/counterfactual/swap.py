"""Swap tests: which modality does the prediction follow when modalities disagree?

For a sample of class ``a`` the analysed modality is replaced by the same modality of a random
sample of class ``b != a``; the prediction then *follows the original* (``a``, the modalities
left in place), *follows the swapped modality* (``b``) or *neither*. Over all class pairs this
gives the model's modality dominance: a model that follows the swapped modality for every pair
relies on it alone.
"""

from __future__ import annotations

import pandas as pd
import torch

from modalab.counterfactual.attributions import predict_split
from modalab.counterfactual.interventions import intervene
from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit

__all__ = ["swap_test"]

OUTCOMES = ("follows_original", "follows_swapped", "neither")


def swap_test(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    modality: str,
    seed: int = 0,
    batch_size: int = 4096,
) -> pd.DataFrame:
    """Swap one modality in from every other class and count whom the prediction follows.

    Every sample is paired with each other class ``b`` once (a random donor of class ``b``
    with the modality present), so each ordered class pair ``(a, b)`` has as many trials as
    class ``a`` has samples.

    Args:
        predictor: The predictor.
        split: Cached embeddings of the analysed split.
        modality: The modality swapped in.
        seed: Seed of the donor choice.
        batch_size: Batch size of the head passes.

    Returns:
        One row per ordered class pair and outcome: columns ``analysis`` (``swap``),
        ``modality``, ``class`` (the original class ``a``), ``target`` (the donor class ``b``),
        ``statistic`` (the outcome), ``value`` (its fraction), ``n`` (trials); and rows with
        ``class="all"``, ``target="all"`` pooling every pair.
    """
    c = split.num_classes
    counts = torch.zeros(c, c, len(OUTCOMES), dtype=torch.long)
    for shift in range(1, c):
        target = (split.label + shift) % c
        out = intervene(split, "swap", [modality], seed=seed + shift, to_class=target)
        predicted = predict_split(predictor, out.embeddings, out.present, batch_size).argmax(1)
        outcome = torch.full_like(predicted, 2)
        outcome[predicted == split.label] = 0
        outcome[predicted == target] = 1
        flat = (split.label * c + target) * len(OUTCOMES) + outcome
        counts += torch.bincount(flat, minlength=c * c * len(OUTCOMES)).view(c, c, -1)
    rows: list[dict[str, object]] = []
    for a in range(c):
        for b in range(c):
            total = int(counts[a, b].sum())
            if a == b or total == 0:
                continue
            for k, name in enumerate(OUTCOMES):
                rows.append(_swap_row(modality, str(a), str(b), name, int(counts[a, b, k]), total))
    pooled = counts.sum(dim=(0, 1))
    for k, name in enumerate(OUTCOMES):
        rows.append(_swap_row(modality, "all", "all", name, int(pooled[k]), int(pooled.sum())))
    frame = pd.DataFrame(rows)
    frame["metric"] = "fraction"
    return frame


def _swap_row(
    modality: str, a: str, b: str, outcome: str, count: int, total: int
) -> dict[str, object]:
    return {
        "analysis": "swap",
        "modality": modality,
        "target": b,
        "class": a,
        "statistic": outcome,
        "value": count / total if total else float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "n": total,
    }
