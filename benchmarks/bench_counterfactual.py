"""Time exact modality Shapley values with cached embeddings vs. re-running the whole model.

Three modalities (image, text, audio) of the ``shapes`` data give 2^3 = 8 coalitions. The
cached path encodes every sample once and re-runs only fusion + head per coalition; the
reference path re-runs encoders, fusion and head for each coalition. The model is a
supervised late-fusion classifier with the default encoders (its weights do not change the
timing). Both paths must give the same per-sample values; the script prints the difference.

Usage:
    python benchmarks/bench_counterfactual.py [--n-samples 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch

from modalab.counterfactual import FusionModelPredictor, coalition_values, encode_dataset
from modalab.data.shapes import make_shapes
from modalab.experiments.build import build_encoders, build_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    L.seed_everything(0, verbose=False)
    start = time.perf_counter()
    # test_fraction close to 1: the analysed split holds (almost) all n samples.
    splits = make_shapes(
        n_samples=args.n_samples + 4,
        val_fraction=2 / (args.n_samples + 4),
        test_fraction=args.n_samples / (args.n_samples + 4),
    )
    dataset = splits.test
    print(
        f"data: {len(dataset)} samples, modalities {list(dataset.modalities)} "
        f"({time.perf_counter() - start:.1f} s to generate); threads={args.threads}"
    )
    encoder = build_encoders({"embed_dim": 128}, splits)
    method = build_method({"name": "supervised"}, encoder, splits, 128)
    predictor = FusionModelPredictor(method.model)

    start = time.perf_counter()
    cached_split = encode_dataset(predictor, dataset, args.batch_size)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    cached = coalition_values(predictor, cached_split, "log_prob", args.batch_size)
    heads_s = time.perf_counter() - start
    cached_s = encode_s + heads_s

    start = time.perf_counter()
    rerun = coalition_values(predictor, dataset, "log_prob", args.batch_size)
    rerun_s = time.perf_counter() - start

    print(f"coalitions: {cached.values.shape[1]}")
    print(
        f"cached embeddings : {cached_s:8.2f} s  (encode once {encode_s:.2f} s + "
        f"8 x fusion/head {heads_s:.2f} s)"
    )
    print(f"re-run whole model: {rerun_s:8.2f} s  (8 x encoders + fusion + head)")
    print(f"speed-up          : {rerun_s / cached_s:8.2f} x")
    diff = float((cached.values - rerun.values).abs().max())
    print(f"max |difference| of per-sample log-prob values: {diff:.2e}")


if __name__ == "__main__":
    main()
