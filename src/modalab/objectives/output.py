"""The return type shared by the self-supervised objectives."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["LossOutput"]


@dataclass
class LossOutput:
    """The total loss and each named term, for logging.

    Attributes:
        loss: Scalar total.
        terms: Term name (e.g. ``"image~text"`` or ``"variance"``) → scalar.
        num_rows: Term name → number of rows (samples) that took part in the term.
    """

    loss: Tensor
    terms: dict[str, Tensor] = field(default_factory=dict)
    num_rows: dict[str, int] = field(default_factory=dict)


def _zero_like_graph(*tensors: Tensor) -> Tensor:
    """A zero that keeps the autograd graph of ``tensors`` (for batches with no valid row)."""
    total = tensors[0].sum() * 0.0
    for t in tensors[1:]:
        total = total + t.sum() * 0.0
    return total
