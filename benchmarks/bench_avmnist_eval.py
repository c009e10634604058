"""Evaluation of an AV-MNIST run beyond feature extraction: the default protocol's wall time.

A run on the official split evaluates frozen features of 55,000 training, 5,000 validation
and 10,000 test samples: a linear probe per modality and fused (penalty chosen on validation
from the default grid of four), kNN, and cross-modal Recall@K in the joint space. This script
times exactly that call (``modalab.evaluation.evaluate_representations`` with the default
``EvalConfig``) on synthetic features of the same shapes: image and audio 128-d
representations, 64-d joint embeddings, 10 classes, class means plus correlated noise (so that
L-BFGS takes a realistic number of iterations). Feature extraction itself (the encoders'
forward pass) is not included: it is one inference epoch over the data. Run:

    python benchmarks/bench_avmnist_eval.py [--train 55000] [--val 5000] [--test 10000]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from modalab.evaluation import EvalConfig, FeatureSet, evaluate_representations

TARGET_S = 30.0


def _split(n: int, dim: int, joint: int, centres: dict[str, torch.Tensor], seed: int):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(10, (n,), generator=g)
    features, embeddings = {}, {}
    for name, centre in centres.items():
        x = centre[label] + 1.2 * torch.randn(n, dim, generator=g)
        features[name] = x
        embeddings[name] = x[:, :joint] + 0.5 * torch.randn(n, joint, generator=g)
    present = {name: torch.ones(n, dtype=torch.bool) for name in centres}
    observed = torch.ones(n, dtype=torch.bool)
    return FeatureSet(features, present, label, observed, label, torch.arange(n), embeddings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=int, default=55_000)
    parser.add_argument("--val", type=int, default=5_000)
    parser.add_argument("--test", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    centres = {
        "image": torch.randn(10, args.dim, generator=g) * 0.35,
        "audio": torch.randn(10, args.dim, generator=g) * 0.2,
    }
    splits = [
        _split(n, args.dim, 64, centres, seed)
        for seed, n in enumerate((args.train, args.val, args.test))
    ]
    print(
        f"threads: torch {torch.get_num_threads()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    start = time.perf_counter()
    records = evaluate_representations(*splits, num_classes=10, config=EvalConfig())
    wall = time.perf_counter() - start
    probes = {r.modality: r.value for r in records if r.metric == "linear_probe_acc"}
    print(
        f"features: {args.train:,} train / {args.val:,} val / {args.test:,} test, "
        f"{args.dim}-d per modality, 64-d joint; {len(records)} records"
    )
    print("probe accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in probes.items()))
    print(
        f"AV-MNIST evaluation beyond feature extraction: {wall:.1f} s (target <= {TARGET_S:.0f} s)"
    )


if __name__ == "__main__":
    main()
