"""Learning from wrong labels on frozen features: robust probes and small-loss selection.

A linear probe on frozen (e.g. self-supervised) features is trained on noisy labels with
cross-entropy, GCE (Zhang & Sabuncu, NeurIPS 2018) or SCE (Wang et al., ICCV 2019), optionally
after discarding the samples with the largest loss of a warm-up probe — the small-loss trick
(Han et al., "Co-teaching", NeurIPS 2018; Arpit et al., "A Closer Look at Memorization in Deep
Networks", ICML 2017: clean samples are fitted first). The flagged samples are compared with
the known noise mask: precision and recall of "flagged as mislabelled".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.objectives.robust import (
    generalized_cross_entropy,
    small_loss_selection,
    symmetric_cross_entropy,
)

__all__ = ["NoisyProbeResult", "flag_precision_recall", "noisy_label_probe"]

PROBE_LOSSES = ("ce", "gce", "sce")


@dataclass
class NoisyProbeResult:
    """Outcome of a probe trained on noisy labels.

    Attributes:
        accuracy: Test accuracy against clean labels.
        flagged: ``[N]`` bool, training samples flagged as mislabelled (all False without
            selection).
        precision: Fraction of flagged samples that are truly mislabelled (NaN if none flagged
            or no noise mask was given).
        recall: Fraction of mislabelled samples that were flagged (NaN without a noise mask or
            without noise).
    """

    accuracy: float
    flagged: Tensor
    precision: float
    recall: float


def flag_precision_recall(flagged: Tensor, noisy: Tensor) -> tuple[float, float]:
    """Precision and recall of flagged samples against the true noise mask.

    Example:
        >>> flag_precision_recall(torch.tensor([True, True, False, False]),
        ...                       torch.tensor([True, False, True, False]))
        (0.5, 0.5)
    """
    if flagged.shape != noisy.shape:
        raise ValueError(
            f"flagged {tuple(flagged.shape)} and noise mask {tuple(noisy.shape)} must align."
        )
    hits = float((flagged & noisy).sum())
    n_flagged, n_noisy = float(flagged.sum()), float(noisy.sum())
    precision = hits / n_flagged if n_flagged else float("nan")
    recall = hits / n_noisy if n_noisy else float("nan")
    return precision, recall


def _loss(logits: Tensor, label: Tensor, kind: str, q: float, reduction: str = "mean") -> Tensor:
    if kind == "ce":
        return F.cross_entropy(logits, label, reduction=reduction)
    if kind == "gce":
        return generalized_cross_entropy(logits, label, q, reduction=reduction)
    return symmetric_cross_entropy(logits, label, reduction=reduction)


def _fit(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    kind: str,
    q: float,
    epochs: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> torch.nn.Linear:
    generator = torch.Generator().manual_seed(seed)
    probe = torch.nn.Linear(x.shape[1], num_classes)
    with torch.no_grad():
        probe.weight.copy_(torch.randn(probe.weight.shape, generator=generator) * 0.01)
        probe.bias.zero_()
    optimizer = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(epochs):
            optimizer.zero_grad()
            _loss(probe(x), y, kind, q).backward()
            optimizer.step()
    return probe


def noisy_label_probe(
    train_features: Tensor,
    train_label: Tensor,
    test_features: Tensor,
    test_label: Tensor,
    num_classes: int,
    loss: str = "ce",
    q: float = 0.7,
    forget_rate: float = 0.0,
    noise_mask: Tensor | None = None,
    epochs: int = 300,
    warmup_epochs: int = 30,
    lr: float = 0.05,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> NoisyProbeResult:
    """A linear probe on frozen features trained on noisy labels, robustly.

    Features are standardised with training statistics. With ``forget_rate > 0``, a warm-up
    probe (``warmup_epochs`` full-batch Adam steps, the same loss) ranks the training samples
    by their cross-entropy; the ``forget_rate`` fraction with the largest loss is flagged as
    mislabelled and the final probe is trained from scratch on the rest.

    Args:
        train_features: ``[N, D]`` frozen features.
        train_label: ``[N]`` noisy labels.
        test_features: ``[Nt, D]``.
        test_label: ``[Nt]`` clean labels.
        num_classes: Number of classes.
        loss: ``"ce"``, ``"gce"`` or ``"sce"``.
        q: GCE's ``q``.
        forget_rate: Fraction of training samples to flag and discard, in ``[0, 1)``.
        noise_mask: ``[N]`` bool, which training labels are wrong (for precision/recall).
        epochs: Full-batch Adam steps of the final probe.
        warmup_epochs: Steps of the ranking probe (early: before noise is memorised).
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        seed: Initialisation seed.

    Returns:
        Test accuracy, the flagged mask and its precision/recall.

    Example:
        >>> x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0], [1.5]])
        >>> y = torch.tensor([0, 0, 1, 1, 0])  # the last label is wrong
        >>> out = noisy_label_probe(x, y, x, torch.tensor([0, 0, 1, 1, 1]), 2,
        ...                         forget_rate=0.2, noise_mask=y != torch.tensor([0, 0, 1, 1, 1]))
        >>> out.flagged.tolist(), out.accuracy
        ([False, False, False, False, True], 1.0)
    """
    if loss not in PROBE_LOSSES:
        raise ValueError(f"Unknown probe loss {loss!r}; valid: {list(PROBE_LOSSES)}.")
    if not 0 <= forget_rate < 1:
        raise ValueError(f"forget_rate={forget_rate} must lie in [0, 1).")
    if noise_mask is not None and noise_mask.shape != train_label.shape:
        raise ValueError("noise_mask must be a [N] bool mask aligned with train_label.")
    mean = train_features.mean(0, keepdim=True)
    std = train_features.std(0, keepdim=True).clamp_min(1e-6)
    x, x_test = (train_features - mean) / std, (test_features - mean) / std
    y = train_label.long()
    flagged = torch.zeros(y.shape[0], dtype=torch.bool)
    if forget_rate > 0:
        warm = _fit(x, y, num_classes, loss, q, warmup_epochs, lr, weight_decay, seed)
        with torch.no_grad():
            per_sample = F.cross_entropy(warm(x), y, reduction="none")
        flagged = ~small_loss_selection(per_sample, 1.0 - forget_rate)
    keep = ~flagged
    probe = _fit(x[keep], y[keep], num_classes, loss, q, epochs, lr, weight_decay, seed)
    with torch.no_grad():
        accuracy = float((probe(x_test).argmax(1) == test_label).float().mean())
    precision = recall = float("nan")
    if noise_mask is not None:
        precision, recall = flag_precision_recall(flagged, noise_mask.bool())
    return NoisyProbeResult(accuracy, flagged, precision, recall)
