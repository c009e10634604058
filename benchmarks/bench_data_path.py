"""Data path: samples/s of the in-memory indexing loader vs a per-sample Dataset + DataLoader.

Both iterate one epoch of the same `shapes` training split (image, text, audio) in batches
of 256 and yield a `MultimodalBatch`; the per-sample path is the standard PyTorch idiom
(`__getitem__` returns one sample dict, a collate function stacks them). Run:

    python benchmarks/bench_data_path.py [--n-samples 10000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from _common import timeit
from modalab.data import (
    MemmapMultimodalDataset,
    collate_samples,
    make_loader,
    make_shapes,
    make_stream_loader,
    save_memmap,
)


class PerSampleDataset(Dataset):
    def __init__(self, inputs: dict[str, torch.Tensor], label: torch.Tensor) -> None:
        self.inputs, self.label = inputs, label

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i: int) -> dict:
        return {
            "inputs": {k: v[i] for k, v in self.inputs.items()},
            "label": int(self.label[i]),
            "index": i,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    train = make_shapes(n_samples=args.n_samples).train
    n = len(train)
    fast = make_loader(train, args.batch_size, shuffle=True)
    names = list(train.inputs)
    slow = DataLoader(
        PerSampleDataset(train.inputs, train.label),
        batch_size=args.batch_size,
        shuffle=True,
        collate_fn=lambda s: collate_samples(s, names),
    )

    def epoch(loader) -> int:
        return sum(b.batch_size for b in loader)

    assert epoch(fast) == epoch(slow) == n
    t_fast = timeit(lambda: epoch(fast), repeats=5)
    t_slow = timeit(lambda: epoch(slow), repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        stream = make_stream_loader(
            MemmapMultimodalDataset(save_memmap(train, Path(tmp) / "ds")),
            args.batch_size,
            shuffle=True,
            num_workers=2,
        )
        t_stream = timeit(lambda: epoch(stream), repeats=3)
    print(f"train samples: {n}, batch size {args.batch_size}, modalities {names}")
    print(
        f"in-memory indexing loader : {n / t_fast:12,.0f} samples/s ({t_fast * 1e3:.1f} ms/epoch)"
    )
    print(
        f"per-sample Dataset+collate: {n / t_slow:12,.0f} samples/s ({t_slow * 1e3:.1f} ms/epoch)"
    )
    print(f"memory-mapped stream, 2 workers: {n / t_stream:12,.0f} samples/s")
    print(f"speed-up: {t_slow / t_fast:.1f}x  (target >= 10x)")


if __name__ == "__main__":
    main()
