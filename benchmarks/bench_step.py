"""The AV-MNIST training step: fp32 NCHW vs channels_last vs bf16 autocast vs both, side by side.

One CLIP training step (forward, loss, backward, AdamW) on an AV-MNIST-shaped batch: image
``[B, 1, 28, 28]`` and log-mel spectrogram ``[B, 1, 40, 101]`` (AV-MNIST's defaults: 40 mel
bands, 1 s at a 10 ms hop), each through the ``cnn2d`` encoder that ``data=avmnist`` gets by
default (``model.embed_dim=128``), with ``method=clip``'s projection heads and loss. The four
variants run interleaved, round after round, so that a change in machine load hits all of
them alike; the median per variant is printed with its ratio to fp32 NCHW (today's step
before channels_last became the encoder's default). Run:

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

from _common import random_batch
from modalab.data.batch import MultimodalBatch
from modalab.methods.registry import METHODS
from modalab.models.encoders import ConvEncoder
from modalab.models.multimodal import MultimodalEncoder

SHAPES = {"image": (1, 28, 28), "audio": (1, 40, 101)}


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(ln for ln in f if ln.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx512f", "avx512_bf16", "amx_bf16", "avx2")
    return ", ".join(f for f in wanted if f in flags) or "none of avx2/avx512/amx"


def _method(channels_last: bool, seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    encoders = torch.nn.ModuleDict(
        {m: ConvEncoder(2, s[0], 128, channels_last=channels_last) for m, s in SHAPES.items()}
    )
    method = METHODS.get("clip")(MultimodalEncoder(encoders), num_classes=10, embed_dim=128)
    return method, torch.optim.AdamW(method.parameters(), lr=2e-3, weight_decay=1e-4)


def _step(method, optimizer, batch: MultimodalBatch, bf16: bool) -> float:
    start = time.perf_counter()
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with context:
        loss = method.compute_loss(batch).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
        + f"; CPU flags: {_cpu_flags()}"
    )
    print(f"batch {args.batch_size}: image {SHAPES['image']}, audio {SHAPES['audio']}, cnn2d x2")
    variants = {
        "fp32 NCHW": (False, False),
        "channels_last": (True, False),
        "bf16 autocast": (False, True),
        "channels_last + bf16": (True, True),
    }
    batch = random_batch(SHAPES, args.batch_size)
    state = {name: _method(cl) for name, (cl, _) in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for name, (_, bf16) in variants.items():  # warm-up (oneDNN primitive creation)
        _step(*state[name], batch, bf16)
    for _ in range(args.rounds):
        for name, (_, bf16) in variants.items():
            times[name].append(_step(*state[name], batch, bf16))
    base = statistics.median(times["fp32 NCHW"])
    for name in variants:
        median = statistics.median(times[name])
        print(f"  {name:22s}: {1e3 * median:7.1f} ms/step  ratio to fp32 NCHW {median / base:.2f}")
    best = statistics.median(times["channels_last"]) / base
    print(f"step ratio (channels_last default / fp32 NCHW): {best:.2f} (target <= 0.67)")


if __name__ == "__main__":
    main()
