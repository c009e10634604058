"""Robustness of a fused predictor to modalities missing at test time."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader
from modalab.methods.tricks import modality_dropout

__all__ = ["MissingRatePoint", "missing_rate_curve"]


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


@torch.no_grad()
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
    :func:`~modalab.methods.tricks.modality_dropout` with a generator seeded by ``seed`` and
    the rate, so every predictor compared sees the same masks).

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
    points = []
    for rate in rates:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + round(rate * 1e6))
        correct = absent = entries = 0
        for batch in make_loader(dataset, batch_size):
            present = modality_dropout(batch.present, rate, generator)
            dropped = replace(batch, present=present)
            logits = predict(dropped.to(device)).cpu()
            correct += int((logits.argmax(1) == batch.clean_label).sum())
            stacked = torch.stack(list(present.values()))
            absent += int((~stacked).sum())
            entries += stacked.numel()
        points.append(MissingRatePoint(float(rate), correct / len(dataset), absent / entries))
    return points
