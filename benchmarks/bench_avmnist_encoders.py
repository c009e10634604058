"""AV-MNIST late-fusion training step: MultiBench's LeNets vs the ``cnn2d`` encoders, side by side.

One ``method=supervised`` step (late fusion: concatenation + MLP head, cross-entropy, backward,
AdamW) on a batch shaped like ``data=avmnist``'s default protocol (image ``[B, 1, 28, 28]``,
spectrogram ``[B, 1, 112, 112]``), with ``model.embed_dim=128``, once with the ``lenet``
encoders that ``data=avmnist`` now uses by default (MultiBench's ``LeNet(1, 6, 3)`` /
``LeNet(1, 6, 5)``) and once with ``cnn2d`` (the shape-generic MONAI CNN, channels-last, that it
used before); ``lenet NCHW`` is the LeNet without channels-last. The variants run
interleaved round after round so that a change of machine load hits all alike; the median
per variant, its parameter count and the ratio are printed, with the projected time of one
55,000-sample epoch (training steps only). Run:

    python benchmarks/bench_avmnist_encoders.py [--batch-size 64 256] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from _common import random_batch
from modalab.data.batch import MultimodalBatch
from modalab.methods.registry import METHODS
from modalab.models.encoders import build_encoder
from modalab.models.multimodal import MultimodalEncoder

SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
TRAIN_SIZE = 55_000


#: name -> (registered encoder, its keyword arguments)
VARIANTS: dict[str, tuple[str, dict[str, bool]]] = {
    "cnn2d": ("cnn2d", {}),
    "lenet": ("lenet", {}),
    "lenet NCHW": ("lenet", {"channels_last": False}),
}


def _method(variant: str, seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    name, kwargs = VARIANTS[variant]
    encoders = torch.nn.ModuleDict(
        {m: build_encoder(name, torch.zeros(2, *s), 128, **kwargs) for m, s in SHAPES.items()}
    )
    method = METHODS.get("supervised")(MultimodalEncoder(encoders), num_classes=10, embed_dim=128)
    return method, torch.optim.AdamW(method.parameters(), lr=2e-3, weight_decay=1e-4)


def _step(
    method: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: MultimodalBatch
) -> float:
    start = time.perf_counter()
    loss = method.training_step(batch, 0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(
        f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    variants = tuple(VARIANTS)
    state = {name: _method(name) for name in variants}
    for name in variants:
        method = state[name][0]
        method.log = lambda *a, **k: None  # type: ignore[method-assign]  # no Trainer here
        params = sum(p.numel() for p in method.encoder.parameters())
        print(f"  {name}: encoder parameters {params:,}")
    for size in args.batch_size:
        batch = random_batch(SHAPES, size)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for name in variants:  # warm-up (oneDNN primitive creation)
            _step(*state[name], batch)
        for _ in range(args.rounds):
            for name in variants:
                times[name].append(_step(*state[name], batch))
        base = statistics.median(times["cnn2d"])
        print(f"batch {size}: image {SHAPES['image']}, audio {SHAPES['audio']}, supervised")
        for name in variants:
            median = statistics.median(times[name])
            epoch_min = median * TRAIN_SIZE / size / 60
            print(
                f"  {name:10s}: {1e3 * median:7.1f} ms/step  ratio to cnn2d {median / base:.2f}"
                f"  (55,000-sample epoch of steps: {epoch_min:.1f} min)"
            )
    print("load average after: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
