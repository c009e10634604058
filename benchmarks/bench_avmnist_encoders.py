"""AV-MNIST late-fusion step: MultiBench's LeNets, their variants and ``cnn2d``, side by side.

One ``method=supervised`` step (late fusion: concatenation + MLP head, cross-entropy, backward,
AdamW) on a batch shaped like ``data=avmnist``'s default protocol (image ``[B, 1, 28, 28]``,
spectrogram ``[B, 1, 112, 112]``), with ``model.embed_dim=128``. Encoder variants:

* ``lenet``: the default (MultiBench's ``LeNet(1, 6, 3)`` / ``LeNet(1, 6, 5)``, channels-last,
  batch norm by :class:`~modalab.models.norm.ChannelsLastBatchNorm2d`);
* ``lenet, torch BN``: the same with PyTorch's ``nn.BatchNorm2d`` (the default before
  ``ChannelsLastBatchNorm2d``);
* ``lenet NCHW``: the LeNet without channels-last;
* ``cnn2d``: the shape-generic MONAI CNN (channels-last) that ``data=avmnist`` used before.

Each runs under both ``trainer.allocator`` settings (``system``: the C library's defaults;
``reuse``: the default now), one worker process per allocator. Every (variant, allocator)
runs once per round, round after round, so that a change of machine load hits all alike; the
median is printed with the projected time of one 55,000-sample epoch (training steps only),
and the default's ratio to the step before these two changes. Run:

    python benchmarks/bench_avmnist_encoders.py [--batch-size 64 256] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from _common import AllocatorWorkers, method_and_optimizer, random_batch, serve_steps
from modalab.data.batch import MultimodalBatch
from modalab.models.encoders import build_encoder

SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
TRAIN_SIZE = 55_000
ALLOCATORS = ("system", "reuse")

#: name -> (registered encoder, its keyword arguments, PyTorch's batch norm instead of modalab's)
VARIANTS: dict[str, tuple[str, dict[str, bool], bool]] = {
    "lenet": ("lenet", {}, False),
    "lenet, torch BN": ("lenet", {}, True),
    "lenet NCHW": ("lenet", {"channels_last": False}, False),
    "cnn2d": ("cnn2d", {}, False),
}


def _torch_batch_norm(encoder: torch.nn.Module) -> None:
    for block in encoder.blocks:
        norm = block[1]
        plain = torch.nn.BatchNorm2d(norm.num_features)
        plain.load_state_dict(norm.state_dict())
        block[1] = plain


def _method(variant: str, seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    name, kwargs, torch_bn = VARIANTS[variant]
    encoders = torch.nn.ModuleDict(
        {m: build_encoder(name, torch.zeros(2, *s), 128, **kwargs) for m, s in SHAPES.items()}
    )
    if torch_bn:
        for encoder in encoders.values():
            _torch_batch_norm(encoder)
    return method_and_optimizer("supervised", encoders)


def _step(
    method: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: MultimodalBatch
) -> float:
    start = time.perf_counter()
    loss = method.training_step(batch, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def _worker(allocator: str, sizes: list[int]) -> None:
    steps = {}
    for size in sizes:
        batch = random_batch(SHAPES, size)
        for variant in VARIANTS:
            state = _method(variant)
            _step(*state, batch)  # warm-up (oneDNN primitive creation)
            steps[f"{variant}@{size}"] = lambda s=state, b=batch: _step(*s, b)
    serve_steps(allocator, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 256])
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
    )
    for name in VARIANTS:
        params = sum(p.numel() for p in _method(name)[0].encoder.parameters())
        print(f"  {name}: encoder parameters {params:,}")
    sizes = [str(s) for s in args.batch_size]
    workers = AllocatorWorkers(__file__, ALLOCATORS, ["--batch-size", *sizes])
    print(
        "allocator in effect per worker: "
        + ", ".join(f"{a}: {r}" for a, r in workers.ready.items())
    )
    try:
        for size in args.batch_size:
            times = {(a, v): [] for v in VARIANTS for a in ALLOCATORS}
            for _ in range(args.rounds):
                for allocator, variant in times:
                    times[allocator, variant].append(workers.step(allocator, f"{variant}@{size}"))
            base = statistics.median(times["system", "lenet, torch BN"])
            print(f"batch {size}: image {SHAPES['image']}, audio {SHAPES['audio']}, supervised")
            for (allocator, variant), values in times.items():
                median = statistics.median(values)
                epoch_min = median * TRAIN_SIZE / size / 60
                print(
                    f"  {variant:15s} allocator {allocator:6s}: {1e3 * median:7.1f} ms/step"
                    f"  ratio {median / base:.2f}  (55,000-sample epoch of steps: "
                    f"{epoch_min:.1f} min)"
                )
            now = statistics.median(times["reuse", "lenet"]) / base
            print(
                f"batch {size}: lenet step ratio (default now: modalab's batch norm, allocator "
                f"reuse / before: torch BN, allocator system): {now:.2f}"
            )
    finally:
        workers.close()
    print("load average after: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
