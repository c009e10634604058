"""The one return type of every objective, and what a loss module declares about its inputs.

Every registered loss module returns a :class:`LossOutput`. A self-supervised loss module
also declares, as class attributes read by the two-branch recipe
(:class:`~modalab.methods.siamese.SiameseMethod`), how it is called:

* ``takes_targets`` (default ``False``): ``False`` — ``forward(embeddings, present)`` compares
  the branches' projections; ``True`` — ``forward(predictions, targets, present)`` compares
  predictions with (momentum or stop-gradient) targets;
* ``keeps_queue`` (default ``False``): ``True`` — the recipe calls
  ``enqueue(targets, present)`` after each training loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["LossOutput", "zero_like_graph"]


@dataclass
class LossOutput:
    """The total loss, its named terms (logged), and how many rows took part in each.

    Attributes:
        loss: Scalar total.
        terms: Term name (e.g. ``"image~text"`` or ``"variance"``) → scalar, logged as
            ``{stage}/{name}`` by the recipes.
        num_rows: Term name → number of rows (samples, or pairs of a pair term) that took
            part in the term; a term without rows (e.g. a pair jointly present in fewer than
            two rows) is absent or counts ``0``.
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
