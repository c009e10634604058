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

    Uses :func:`torch.distributed.nn.functional.all_gather`, whose backward sums the gradients
    of all processes, so that each process's loss over the global batch back-propagates to its
    local embeddings exactly as a single process holding the whole batch would. Outside a
    process group the tensor is returned unchanged. Boolean tensors (masks) are gathered
    without gradients.

    Args:
        tensor: ``[B_local, ...]``; every process must hold the same shape.

    Returns:
        ``[world_size * B_local, ...]`` in rank order.
    """
    if not is_distributed():
        return tensor
    if not tensor.is_floating_point():
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


def gather_mapping(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """:func:`gather_with_grad` applied to every value of ``{name: [B_local, ...]}``.

    Example:
        >>> gather_mapping({"image": torch.ones(2, 3)})["image"].shape  # no process group
        torch.Size([2, 3])
    """
    return {k: gather_with_grad(v) for k, v in tensors.items()}
