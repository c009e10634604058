"""Supervised objectives over observed labels only."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from modalab.objectives.output import zero_like_graph

__all__ = ["masked_cross_entropy"]


def masked_cross_entropy(logits: Tensor, label: Tensor, observed: Tensor) -> Tensor:
    """Mean cross-entropy over the rows whose label is observed.

    Args:
        logits: ``[B, C]`` class logits.
        label: ``[B]`` labels (values of unobserved rows are ignored).
        observed: ``[B]`` bool mask of observed labels.

    Returns:
        Scalar loss; a graph-keeping zero when no label is observed.

    Example:
        >>> logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])
        >>> round(masked_cross_entropy(logits, torch.tensor([1, 1]),
        ...       torch.tensor([True, False])).item(), 4)  # log 2
        0.6931
    """
    if not bool(observed.any()):
        return zero_like_graph(logits)
    return F.cross_entropy(logits[observed], label[observed])
