"""The return type shared by the self-supervised objectives."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["LossOutput", "zero_like_graph"]


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


def zero_like_graph(*tensors: Tensor) -> Tensor:
    """A zero that keeps the autograd graph of ``tensors`` (for batches with no valid row).

    It sums an empty slice of each tensor, so no value is read: a NaN in an absent row gives
    a zero loss and zero gradients (``nan * 0.0`` would be NaN).

    Example:
        >>> x = torch.tensor([[float("nan"), 1.0]], requires_grad=True)
        >>> zero = zero_like_graph(x)
        >>> zero.backward()
        >>> zero.item(), x.grad.tolist()
        (0.0, [[0.0, 0.0]])
    """
    total = tensors[0].reshape(-1)[:0].sum()
    for t in tensors[1:]:
        total = total + t.reshape(-1)[:0].sum()
    return total
