"""Robustness of a fused predictor to modalities missing at test time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.data.presence import drop_modalities
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader

__all__ = [
    "MaskChunk",
    "MissingRatePoint",
    "mask_generator",
    "missing_rate_curve",
    "missing_rate_points",
]


@dataclass
class MissingRatePoint:
    """Accuracy of a predictor at one test-time missing rate.

    Attributes:
        rate: Nominal per-modality drop probability.
        accuracy: Accuracy against the clean labels.
        missing_fraction: Fraction of ``(sample, modality)`` entries actually absent.
    """

    rate: float
    accuracy: float
    missing_fraction: float


MaskChunk = tuple[Mapping[str, Tensor], Tensor, Callable[[dict[str, Tensor]], Tensor]]
"""One chunk of rows of a missing-rate curve: their masks ``[B]`` per modality, their clean
labels ``[B]``, and a function from dropped masks to class logits ``[B, C]``."""


def mask_generator(seed: int, rate: float) -> torch.Generator:
    """The generator of one curve point's masks: the same for every predictor compared."""
    return torch.Generator().manual_seed(seed * 1_000_003 + round(rate * 1e6))


@torch.no_grad()
def missing_rate_points(
    chunks: Callable[[], Iterable[MaskChunk]], rates: Sequence[float], seed: int = 0
) -> list[MissingRatePoint]:
    """The missing-rate curve over chunks of rows, shared by every way of predicting them.

    For each rate, one generator (:func:`mask_generator`) draws each chunk's masks in turn
    with :func:`~modalab.data.presence.drop_modalities` (``keep_one=True``: each present
    entry dropped with probability ``rate``, one modality restored for a row left empty); the
    chunk's predictor sees them. Two callers whose chunks have the same masks in the same order
    therefore get the same points (:func:`missing_rate_curve` re-encodes each batch,
    :func:`~modalab.counterfactual.missing.cached_missing_rate_curve` reuses embeddings).

    Args:
        chunks: Called once per rate; yields ``(present, label, predict)`` per chunk of rows.
        rates: Drop probabilities in ``[0, 1]``.
        seed: Seed of the masks.

    Returns:
        One point per rate.

    Example:
        >>> present = {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
        >>> def right_iff_a(p):
        ...     return torch.stack([p["a"].float(), 1 - p["a"].float()], dim=1)
        >>> chunks = lambda: [(present, torch.zeros(4, dtype=torch.long), right_iff_a)]
        >>> [(p.accuracy, p.missing_fraction) for p in missing_rate_points(chunks, [0.0])]
        [(1.0, 0.0)]
    """
    points = []
    for rate in rates:
        generator = mask_generator(seed, rate)
        correct = absent = entries = rows = 0
        for present, label, predict in chunks():
            dropped = drop_modalities(present, rate, generator, keep_one=True)
            logits = predict(dropped).cpu()
            correct += int((logits.argmax(1) == label.cpu()).sum())
            stacked = torch.stack(list(dropped.values()))
            absent += int((~stacked).sum())
            entries += stacked.numel()
            rows += label.shape[0]
        points.append(MissingRatePoint(float(rate), correct / rows, absent / entries))
    return points


def _batch_chunks(
    predict: Callable[[MultimodalBatch], Tensor],
    dataset: MultimodalTensorDataset,
    batch_size: int,
    device: torch.device | str,
) -> Iterator[MaskChunk]:
    for batch in make_loader(dataset, batch_size):
        yield batch.present, batch.clean_label, functools.partial(_predict, predict, batch, device)


def _predict(
    predict: Callable[[MultimodalBatch], Tensor],
    batch: MultimodalBatch,
    device: torch.device | str,
    present: dict[str, Tensor],
) -> Tensor:
    return predict(replace(batch, present=present).to(device))


def missing_rate_curve(
    predict: Callable[[MultimodalBatch], Tensor],
    dataset: MultimodalTensorDataset,
    rates: Sequence[float],
    seed: int = 0,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> list[MissingRatePoint]:
    """Accuracy of ``predict`` when each modality is dropped at test time with a given rate.

    Each sample keeps at least one modality (the masks come from
    :func:`~modalab.data.presence.drop_modalities` through :func:`missing_rate_points`, with
    a generator seeded by ``seed`` and the rate, so every predictor compared sees the same
    masks).

    Args:
        predict: Maps a batch to class logits ``[B, C]`` (a method's ``forward``).
        dataset: The test split.
        rates: Drop probabilities in ``[0, 1]``.
        seed: Seed of the masks.
        batch_size: Batch size.
        device: Device of the predictor.

    Returns:
        One point per rate.
    """
    return missing_rate_points(
        lambda: _batch_chunks(predict, dataset, batch_size, device), rates, seed
    )
