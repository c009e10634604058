"""The AV-MNIST training step of issue 18: layout, bf16 autocast and allocator, side by side.

One CLIP training step (forward, loss, backward, AdamW) on an AV-MNIST-shaped batch: image
``[B, 1, 28, 28]`` and log-mel spectrogram ``[B, 1, 40, 101]`` (40 mel bands, 1 s at a 10 ms
hop), each through the ``cnn2d`` encoder (``model.embed_dim=128``), with ``method=clip``'s
projection heads and loss — the step the issue measured (382 ms then, under load). Variants:
fp32 NCHW with the spatial mean and out-of-place ReLUs (the step when the issue was filed),
channels-last (the encoder's default since), channels-last with the spatial mean it used until
the sum / count pooling (whose gradient is not materialised NCHW), channels-last with the
out-of-place ReLUs it used until 2026-11-30, channels-last without the convolutions' biases
(redundant before batch norm, which subtracts each channel's mean: same function, one bias
gradient reduction less per block; not adopted, see docs/benchmarks.md), bf16 autocast, and
both; each under the
two ``trainer.allocator`` settings, ``system`` (the C library's defaults, as when the issue
was filed) and ``reuse`` (the default now, see ``modalab.experiments.allocator``), one
worker process per allocator. Every variant runs once
per round, round after round, so that a change in machine load hits all alike; the median per
variant is printed with its ratio to fp32 NCHW under ``system``. Run:

    python benchmarks/bench_step.py [--batch-size 256] [--rounds 7]

bf16 uses ``torch.autocast("cpu", torch.bfloat16)``, i.e. what ``trainer.precision=bf16-mixed``
does on CPU. It is fast only on CPUs with native bf16 instructions (AVX512-BF16 / AMX); the
CPU flags are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch

from _common import AllocatorWorkers, method_and_optimizer, random_batch, serve_steps
from modalab.data.batch import MultimodalBatch
from modalab.models.encoders import ConvEncoder

SHAPES = {"image": (1, 28, 28), "audio": (1, 40, 101)}
#: name -> (channels_last, bf16, mean_pool, ReLU in place, convolution biases)
VARIANTS = {
    "fp32 NCHW": (False, False, True, False, True),
    "channels_last": (True, False, False, True, True),
    "channels_last, h.mean": (True, False, True, True, True),
    "channels_last, ReLU copy": (True, False, False, False, True),
    "channels_last, no bias": (True, False, False, True, False),
    "bf16 autocast": (False, True, False, True, True),
    "channels_last + bf16": (True, True, False, True, True),
}
ALLOCATORS = ("system", "reuse")


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(ln for ln in f if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "avx2")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def _mean_pooled(encoder: ConvEncoder) -> ConvEncoder:
    """The encoder as it pooled before: ``h.mean((2, 3))``, whose backward hands the last
    NHWC activation a contiguous NCHW gradient (``ConvEncoder.forward`` now sums / count)."""
    encoder.forward = lambda x: encoder.out(encoder._feature_map(x).mean(dim=(2, 3)))  # type: ignore[method-assign]
    return encoder


def _method(
    channels_last: bool,
    mean_pool: bool = False,
    relu_inplace: bool = True,
    conv_bias: bool = True,
    seed: int = 0,
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    encoders = torch.nn.ModuleDict(
        {m: ConvEncoder(2, s[0], 128, channels_last=channels_last) for m, s in SHAPES.items()}
    )
    for encoder in encoders.values():
        if mean_pool:
            _mean_pooled(encoder)  # type: ignore[arg-type]
        for module in encoder.modules():  # the encoder's ReLUs run in place since 2026-11-30
            if isinstance(module, torch.nn.ReLU):
                module.inplace = relu_inplace
            # Removed after initialisation: the other weights are those of the same seed.
            if not conv_bias and isinstance(module, torch.nn.Conv2d):
                module.bias = None
    return method_and_optimizer("clip", encoders)


def _step(method, optimizer, batch: MultimodalBatch, bf16: bool) -> float:
    start = time.perf_counter()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with context:
        loss = method.compute_loss(batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def _worker(allocator: str, batch_size: int) -> None:
    batch = random_batch(SHAPES, batch_size)
    steps = {}
    for name, (channels_last, bf16, mean_pool, relu_inplace, conv_bias) in VARIANTS.items():
        state = _method(channels_last, mean_pool, relu_inplace, conv_bias)
        _step(*state, batch, bf16)  # warm-up (oneDNN primitive creation)
        steps[name] = lambda s=state, b=bf16: _step(*s, batch, b)
    serve_steps(allocator, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--worker", choices=ALLOCATORS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.batch_size)
        return
    print(
        f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
        + f"; CPU flags: {_cpu_flags()}"
    )
    print(f"batch {args.batch_size}: image {SHAPES['image']}, audio {SHAPES['audio']}, cnn2d x2")
    workers = AllocatorWorkers(__file__, ALLOCATORS, ["--batch-size", str(args.batch_size)])
    print(
        "allocator in effect per worker: "
        + ", ".join(f"{a}: {r}" for a, r in workers.ready.items())
    )
    times: dict[tuple[str, str], list[float]] = {(a, v): [] for a in ALLOCATORS for v in VARIANTS}
    try:
        for _ in range(args.rounds):
            for allocator, variant in times:
                times[allocator, variant].append(workers.step(allocator, variant))
    finally:
        workers.close()
    base = statistics.median(times["system", "fp32 NCHW"])
    for (allocator, variant), values in times.items():
        median = statistics.median(values)
        print(
            f"  {variant:22s} allocator {allocator:6s}: {1e3 * median:7.1f} ms/step"
            f"  ratio to fp32 NCHW, system {median / base:.2f}"
        )
    now = statistics.median(times["reuse", "channels_last"]) / base
    print(
        "step ratio (default now: channels_last, allocator reuse / when filed: fp32 NCHW, "
        f"allocator system): {now:.2f} (target <= 0.67)"
    )
    print("load average after: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
