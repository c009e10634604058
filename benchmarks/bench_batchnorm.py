"""Batch norm + ReLU of channels-last maps: PyTorch's kernel vs ``ChannelsLastBatchNorm2d``.

Forward and backward of ``relu(batch_norm(x))`` in training mode on the channels-last feature
maps of the AV-MNIST LeNet's audio encoder at batch 256 (``[256, C, H, W]`` after each of its
convolutions) and on ``cnn2d``'s first map, with PyTorch's ``F.batch_norm`` and with modalab's
NHWC path (:mod:`modalab.models.norm`), interleaved; the median of ``--repeats`` calls per
variant. ``ChannelsLastBatchNorm2d`` takes its own path below 32 channels only. Run:

    python benchmarks/bench_batchnorm.py [--repeats 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.experiments.allocator import set_allocator
from modalab.models.norm import NATIVE_FROM_CHANNELS, batch_norm_nhwc

MAPS = [(6, 112, 112), (12, 56, 56), (24, 28, 28), (48, 14, 14), (32, 20, 51)]


def _pass(kernel: str, x0: Tensor, weight: Tensor, bias: Tensor, grad: Tensor) -> None:
    """Forward and backward of ``relu(batch_norm(x))`` with ``kernel`` (torch or modalab)."""
    x = x0.detach().requires_grad_()
    if kernel == "torch":
        y = F.batch_norm(x, None, None, weight, bias, training=True)
    else:
        y = batch_norm_nhwc(x, weight, bias)
    F.relu(y).backward(grad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    print(
        f"allocator {set_allocator('reuse')}; threads {torch.get_num_threads()}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    for channels, height, width in MAPS:
        x0 = torch.randn(args.batch_size, channels, height, width).contiguous(
            memory_format=torch.channels_last
        )
        weight = torch.rand(channels).requires_grad_()
        bias = torch.randn(channels).requires_grad_()
        grad = torch.randn_like(x0)

        times: dict[str, list[float]] = {"torch": [], "modalab": []}
        for name in times:
            _pass(name, x0, weight, bias, grad)  # warm-up
        for _ in range(args.repeats):
            for name in times:
                start = time.perf_counter()
                _pass(name, x0, weight, bias, grad)
                times[name].append(time.perf_counter() - start)
        a, b = (1e3 * statistics.median(times[k]) for k in ("torch", "modalab"))
        used = "modalab's path" if channels < NATIVE_FROM_CHANNELS else "PyTorch's kernel"
        print(
            f"  [{args.batch_size}, {channels:3d}, {height:3d}, {width:3d}]: torch {a:7.1f} ms, "
            f"modalab {b:7.1f} ms, ratio {b / a:.2f}  (ChannelsLastBatchNorm2d uses {used})"
        )


if __name__ == "__main__":
    main()
