"""How time and memory grow with dataset size and number of modalities.

For each setting: generation time of `shapes`, one CLIP training epoch (batch 256, through a
plain loop over modalab's parts), feature extraction + linear probe, and the memory the
dataset tensors hold. Run:

    python benchmarks/bench_scaling.py [--sizes 1000 10000 100000] [--modalities 2 3 4]
"""

from __future__ import annotations

import argparse
import time

import torch

from modalab.data import make_loader, make_shapes
from modalab.evaluation import extract_features, linear_probe
from modalab.methods import build_clip
from modalab.models import MultimodalEncoder, build_encoder

ORDER = ["image", "text", "audio", "tabular"]


def one_setting(n: int, m: int) -> dict[str, float]:
    start = time.perf_counter()
    splits = make_shapes(n_samples=n, modalities=ORDER[:m])
    t_gen = time.perf_counter() - start
    nbytes = sum(
        t.numel() * t.element_size()
        for s in (splits.train, splits.val, splits.test)
        for t in s.inputs.values()
    )
    example = splits.train.__getitems__([0, 1])
    encoders = torch.nn.ModuleDict(
        {k: build_encoder("auto", v, 128, vocab_size=32) for k, v in example.inputs.items()}
    )
    method = build_clip(MultimodalEncoder(encoders), splits.num_classes, 128)
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3)
    loader = make_loader(splits.train, 256, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for batch in loader:
        out = method.loss(method.encoder.project(method.encoder(batch.inputs)), batch.present)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    t_epoch = time.perf_counter() - start
    method.eval()
    start = time.perf_counter()
    feats = [
        extract_features(method.representations, s) for s in (splits.train, splits.val, splits.test)
    ]
    fused = [f.fused() for f in feats]
    linear_probe(
        fused[0],
        feats[0].label,
        fused[1],
        feats[1].label,
        fused[2],
        feats[2].label,
        splits.num_classes,
        l2_grid=[1e-2],
    )
    t_eval = time.perf_counter() - start
    return {"gen": t_gen, "epoch": t_epoch, "eval": t_eval, "mib": nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--modalities", type=int, nargs="+", default=[2, 3, 4])
    args = parser.parse_args()
    print(f"threads: {torch.get_num_threads()}")
    print(
        f"{'samples':>8} {'modalities':>10} {'generate s':>10} {'epoch s':>8} "
        f"{'eval s':>7} {'data MiB':>9}"
    )
    settings = [(n, 3) for n in args.sizes] + [(10_000, m) for m in args.modalities if m != 3]
    for n, m in settings:
        r = one_setting(n, m)
        print(
            f"{n:>8} {m:>10} {r['gen']:>10.2f} {r['epoch']:>8.2f} {r['eval']:>7.2f} "
            f"{r['mib']:>9.1f}"
        )


if __name__ == "__main__":
    main()
