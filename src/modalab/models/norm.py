"""Batch normalisation of channels-last (NHWC) feature maps with few channels, fast on CPU.

PyTorch's CPU batch norm vectorises a channels-last map along its channels. With the few
channels of a small CNN's first layers (LeNet: 6 and 12) that path is slow: on a
``[256, 6, 112, 112]`` map (AV-MNIST's spectrogram after the first convolution) the forward
and backward pass take about 4x the time of the same map in NCHW, which cancels what
channels-last gains in the convolutions and the pooling (``benchmarks/bench_avmnist_encoders.py``).

:class:`ChannelsLastBatchNorm2d` computes the same training-mode batch norm on a view of the
NHWC memory as rows of ``L = C·t`` values (``t`` whole pixels per row, ``L`` a multiple of
64 when the size allows): per-channel sums are column sums of that view folded ``t`` times,
and the affine map is one broadcast multiply-add along rows of ``L`` values, which vectorises
whatever ``C`` is. The statistics are two-pass (mean, then the centred sum of squares), like
PyTorch's. Parameters and buffers are those of :class:`torch.nn.BatchNorm2d` (checkpoints load
either way); any other input (NCHW, eval mode, no batch statistics, many channels) goes to
PyTorch's own kernel.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ChannelsLastBatchNorm2d", "batch_norm_nhwc"]

#: Channels from which PyTorch's own channels-last kernel is as fast (measured: 48 channels at
#: 14x14 run faster natively).
NATIVE_FROM_CHANNELS = 32


def _row_width(channels: int, pixels: int) -> int:
    """``t``, the pixels per row: ``C·t`` a multiple of 64 when ``pixels`` allows it."""
    t = 64 // math.gcd(channels, 64)
    while pixels % t:
        t //= 2
    return t


class _BatchNormNHWC(torch.autograd.Function):
    """Training-mode batch norm of an NHWC-contiguous ``x``; returns ``(y, mean, biased var)``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, eps: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        n, c, h, w = x.shape
        pixels = n * h * w
        t = _row_width(c, pixels)
        rows = x.permute(0, 2, 3, 1).reshape(-1, c * t)  # a view: x is NHWC-contiguous
        mean = rows.sum(0).view(t, c).sum(0) / pixels
        centred = rows - mean.repeat(t)
        var = (centred * centred).sum(0).view(t, c).sum(0) / pixels
        rstd = torch.rsqrt(var + eps)
        out = torch.addcmul(bias.repeat(t), centred, (weight * rstd).repeat(t))
        ctx.save_for_backward(centred, rstd, weight)
        ctx.t, ctx.pixels = t, pixels
        y = out.view(n, h, w, c).permute(0, 3, 1, 2)
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad: Tensor, _mean: Any, _var: Any
    ) -> tuple[Tensor, Tensor, Tensor, None]:
        centred, rstd, weight = ctx.saved_tensors
        t, pixels = ctx.t, ctx.pixels
        n, c, h, w = grad.shape
        g = grad.permute(0, 2, 3, 1).reshape(-1, c * t)  # copies only if grad is not NHWC
        sum_g = g.sum(0).view(t, c).sum(0)
        sum_gx = (g * centred).sum(0).view(t, c).sum(0)
        # dx = a·g + b·(x - mean) + k, per channel: the usual batch-norm gradient, expanded.
        a = weight * rstd
        b = -a * rstd * rstd * sum_gx / pixels
        k = -a * sum_g / pixels
        dx = torch.addcmul(torch.addcmul(k.repeat(t), g, a.repeat(t)), centred, b.repeat(t))
        dx = dx.view(n, h, w, c).permute(0, 3, 1, 2)
        return dx, sum_gx * rstd, sum_g, None


def batch_norm_nhwc(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    """Training-mode batch norm of a channels-last ``[N, C, H, W]`` map with batch statistics.

    Equals ``F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)`` up to
    summation order, in values and gradients; the output is channels-last.

    Example:
        >>> import torch.nn.functional as F
        >>> x = torch.randn(4, 6, 5, 5).contiguous(memory_format=torch.channels_last)
        >>> w, b = torch.rand(6) + 0.5, torch.randn(6)
        >>> ref = F.batch_norm(x, None, None, w, b, training=True)
        >>> torch.allclose(batch_norm_nhwc(x, w, b), ref, atol=1e-5)
        True
    """
    return _BatchNormNHWC.apply(x, weight, bias, eps)[0]


class ChannelsLastBatchNorm2d(nn.BatchNorm2d):
    """:class:`torch.nn.BatchNorm2d` with a fast training path for NHWC maps of few channels.

    Same parameters, buffers, running-statistics update (momentum or cumulative average,
    unbiased running variance) and results as ``nn.BatchNorm2d`` up to summation order; see
    the module docstring for when the fast path is taken.

    Example:
        >>> torch.manual_seed(0) is not None
        True
        >>> fast, ref = ChannelsLastBatchNorm2d(6), nn.BatchNorm2d(6)
        >>> x = torch.randn(8, 6, 4, 4).contiguous(memory_format=torch.channels_last)
        >>> torch.allclose(fast(x), ref(x), atol=1e-5)
        True
        >>> torch.allclose(fast.running_var, ref.running_var)
        True
    """

    def _fast(self, x: Tensor) -> bool:
        return (
            self.training
            and self.affine
            and x.dim() == 4
            and x.shape[1] < NATIVE_FROM_CHANNELS
            and x.dtype in (torch.float32, torch.float64)  # bf16 (autocast): PyTorch's kernel
            and x.device.type == "cpu"
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()  # [N, C, 1, 1] and C == 1 are both layouts at once
            and x.numel() > x.shape[1]
        )

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` ``[N, C, H, W]``; channels-last training inputs take the fast path."""
        if not self._fast(x):
            return super().forward(x)
        y, mean, var = _BatchNormNHWC.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (
                    1.0 / float(self.num_batches_tracked)
                    if self.momentum is None
                    else float(self.momentum)
                )
                count = x.numel() // x.shape[1]
                self.running_mean.lerp_(mean, momentum)
                self.running_var.lerp_(var * (count / max(count - 1, 1)), momentum)
        return y
