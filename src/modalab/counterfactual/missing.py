"""Test-time missing-modality curves on cached embeddings.

A modality missing at test time changes only the ``present`` masks, never the embeddings of
the modalities that remain, so a model split into ``encode`` and ``predict``
(:class:`~modalab.counterfactual.predictors.EmbeddingPredictor`) answers a whole curve of
missing rates from one encoding pass. :func:`cached_missing_rate_curve` draws exactly the masks
of :func:`modalab.evaluation.missing.missing_rate_curve` (same generator seeds, same batches)
and so returns the same points, without running an encoder again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import torch

from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit
from modalab.evaluation.missing import MaskChunk, MissingRatePoint, missing_rate_points

__all__ = ["cached_missing_rate_curve"]


@torch.no_grad()
def cached_missing_rate_curve(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    rates: Sequence[float],
    seed: int = 0,
    batch_size: int = 512,
) -> list[MissingRatePoint]:
    """Accuracy when each modality is dropped at test time with a given rate, on the cache.

    The curve is :func:`~modalab.evaluation.missing.missing_rate_points` over chunks of
    ``batch_size`` cached rows, as :func:`~modalab.evaluation.missing.missing_rate_curve` runs
    it over batches: the same masks (:func:`~modalab.data.presence.drop_modalities`, each
    sample keeps at least one modality; ModDrop, Neverova et al., IEEE TPAMI 2016) and the
    same generator seeds, so for a dataset whose modalities are the predictor's, in the same
    order, both give the same points.

    Args:
        predictor: The model, split into cached encoding and re-prediction.
        split: Its cached embeddings of the test split (:func:`encode_dataset`).
        rates: Drop probabilities in ``[0, 1]``.
        seed: Seed of the masks.
        batch_size: Rows per mask draw (keep the uncached curve's batch size to match it).

    Returns:
        One point per rate, accuracy against ``split.label`` (the clean labels).

    Example:
        >>> class Head:
        ...     modalities = ("a", "b")
        ...     def predict(self, embeddings, present):  # right iff modality a is present
        ...         right = present["a"].float()
        ...         return torch.stack([right, 1 - right], dim=1)
        >>> split = EncodedSplit(
        ...     {"a": torch.zeros(4, 1), "b": torch.zeros(4, 1)},
        ...     {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)},
        ...     torch.zeros(4, dtype=torch.long), torch.arange(4), 2)
        >>> [p.accuracy for p in cached_missing_rate_curve(Head(), split, [0.0])]
        [1.0]
    """
    names = list(predictor.modalities)

    def chunks() -> Iterator[MaskChunk]:
        for start in range(0, split.num_samples, batch_size):
            rows = slice(start, start + batch_size)
            embeddings = {m: split.embeddings[m][rows] for m in names}
            present = {m: split.present[m][rows] for m in names}
            yield present, split.label[rows], functools.partial(predictor.predict, embeddings)

    return missing_rate_points(chunks, rates, seed)
