"""Losses in full precision under mixed-precision training (``trainer.precision=bf16-mixed``).

Under autocast, matrix products run in bfloat16 (8 bits of mantissa): a cosine similarity
near 1 is rounded by up to ~2e-3, which a CLIP logit scale of 100 turns into ~0.2 logits of
noise, and a ``log_softmax`` of bfloat16 logits stays bfloat16. The usual practice (e.g.
open_clip's and timm's AMP training keep the loss in float32) is to run the encoders in low
precision and the loss in float32: :func:`full_precision` does this for a loss's ``forward``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

__all__ = ["full_precision"]

F = TypeVar("F", bound=Callable[..., Any])
_LOW = (torch.bfloat16, torch.float16)


def _upcast(value: Any) -> Any:
    if isinstance(value, Tensor) and value.dtype in _LOW:
        return value.float()
    return value


def full_precision(fn: F) -> F:
    """Run ``fn`` with autocast disabled and its low-precision tensor arguments in float32.

    Tensors nested in lists, tuples and dicts are cast too. Outside autocast (the default
    ``32-true`` precision) the wrapper only checks two flags, so float32 training is
    unchanged.

    Example:
        >>> @full_precision
        ... def similarity(a: Tensor, b: Tensor) -> Tensor:
        ...     return a @ b.t()
        >>> a = torch.randn(4, 8)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     similarity(a, a).dtype, (a @ a.t()).dtype
        (torch.float32, torch.bfloat16)
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        devices = [d for d in ("cpu", "cuda") if torch.is_autocast_enabled(d)]
        if not devices:
            return fn(*args, **kwargs)
        args, kwargs = tree_map(_upcast, (args, kwargs))
        with torch.autocast(devices[0], enabled=False):
            if len(devices) > 1:
                with torch.autocast(devices[1], enabled=False):
                    return fn(*args, **kwargs)
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
