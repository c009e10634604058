"""Compute efficiency: achieved FLOP/s of the default CLIP training step vs a large matmul.

The FLOPs of one training step (forward + backward) are counted by
`torch.utils.flop_counter.FlopCounterMode`; the step is timed on the default config's batch.
The reference is a square float32 matmul measured in the same run, interleaved with the step
(round after round, medians), so that a change of machine load hits both alike. Run:

    python benchmarks/bench_flops.py
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from modalab.data import make_loader
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.config import compose_config


def main() -> None:
    cfg = OmegaConf.to_container(compose_config([]), resolve=True)
    splits = build_data(cfg["data"])
    method = build_method(
        cfg["method"], build_encoders(cfg["model"], splits), splits, cfg["model"]["embed_dim"]
    )
    batch = next(iter(make_loader(splits.train, cfg["trainer"]["batch_size"])))
    optimizer = torch.optim.AdamW(method.parameters(), lr=1e-3)

    def step() -> None:
        out = method.loss(method.encoder.project(method.encoder(batch.inputs)), batch.present)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    n = 2048
    a, b = torch.randn(n, n), torch.randn(n, n)
    step(), a @ b  # warm-up
    steps, mms = [], []
    for _ in range(7):
        start = time.perf_counter()
        step()
        steps.append(time.perf_counter() - start)
        start = time.perf_counter()
        a @ b
        mms.append(time.perf_counter() - start)
    t_step, t_mm = statistics.median(steps), statistics.median(mms)
    mm_rate = 2 * n**3 / t_mm
    step_rate = flops / t_step
    print(
        f"threads: {torch.get_num_threads()}, batch size {batch.batch_size}; load average "
        + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(
        f"training step: {flops / 1e9:.2f} GFLOP in {t_step * 1e3:.1f} ms "
        f"-> {step_rate / 1e9:.1f} GFLOP/s"
    )
    print(f"matmul {n}x{n} fp32: {mm_rate / 1e9:.1f} GFLOP/s")
    print(f"efficiency (step / matmul): {step_rate / mm_rate:.1%}")


if __name__ == "__main__":
    main()
