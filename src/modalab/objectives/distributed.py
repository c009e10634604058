"""Gathering tensors across processes with gradients, for global-batch contrastive losses."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ["gather_mapping", "gather_with_grad", "is_distributed"]


def is_distributed() -> bool:
    """Whether a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` from every process along dim 0, keeping gradients.

    Uses :func:`torch.distributed.nn.functional.all_gather`, whose backward *sums* the
    gradients that every process's loss sends to this process's rows. Each process computes
    the same global-batch loss, so the local gradient after this backward is ``world_size``
    times the gradient a single process holding the whole batch would get; DDP's gradient
    averaging (a mean over processes) then divides it by ``world_size`` again, and the
    parameters' gradients equal the single-process ones (``tests/test_distributed_losses.py``
    checks this). Outside DDP's averaging, divide by the world size yourself. Outside a
    process group the tensor is returned unchanged. Boolean tensors (masks) are gathered
    without gradients.

    Args:
        tensor: ``[B_local, ...]``; every process must hold the same shape.

    Returns:
        ``[world_size * B_local, ...]`` in rank order.

    Raises:
        ValueError: When the processes hold different batch sizes (e.g. an uneven last batch:
            use a sampler with ``drop_last=True``); checked with one small collective before the
            gather, which would otherwise abort the process inside the backend.
    """
    if not is_distributed():
        return tensor
    _check_same_shape(tensor)
    if not tensor.is_floating_point():
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def _check_same_shape(tensor: Tensor) -> None:
    """Raise a clear error when the processes' local batch sizes differ (gloo would abort).

    One all-reduce of ``[B, -B]`` with MAX gives the largest and the smallest batch size.
    """
    size = int(tensor.shape[0]) if tensor.dim() else 1
    extremes = torch.tensor([size, -size], dtype=torch.long, device=tensor.device)
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    largest, smallest = int(extremes[0]), -int(extremes[1])
    if largest != smallest:
        raise ValueError(
            f"gather_with_grad: process {dist.get_rank()} holds {size} rows but the processes' "
            f"local batch sizes range from {smallest} to {largest}. Every process must hold the "
            "same local batch size: use drop_last=True (or equal shards) under DDP."
        )


def gather_mapping(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:func:`gather_with_grad` applied to every value of ``{name: [B_local, ...]}``.

    Example:
        >>> gather_mapping({"image": torch.ones(2, 3)})["image"].shape  # no process group
        torch.Size([2, 3])
    """
    return {k: gather_with_grad(v) for k, v in tensors.items()}
