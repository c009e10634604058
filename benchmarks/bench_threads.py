"""Threads of a run: modalab's default setting vs torch's default, side by side.

Each side is a fresh process training the same short `modalab run` (CLIP on `shapes`, fixed
epochs, no early stopping):

* ``modalab``: modalab imported before torch (its default wait: ``GOMP_SPINCOUNT=10000``, a
  short spin, then sleep) and ``trainer.threads=0`` (``OMP_NUM_THREADS`` unset: chosen from
  the load average);
* ``passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (no spin; modalab's previous
  default);
* ``torch``: torch imported first (OpenMP's default wait, 300,000 spins, stays in effect) and
  torch's default thread count (one per physical core).

The sides alternate (modalab, passive, torch, modalab, ...) so that all see the same load; the
1-minute load average is printed before each run. The wall time of training and the wall and
CPU time (user + system, all threads) of the whole ``run()`` (training + evaluation) are
reported, with the median ratios to modalab. ``--busy N`` starts N processes that spin on a
core for the whole measurement (a loaded machine, reproducibly). Run it idle and loaded:

    python benchmarks/bench_threads.py [--repeats 2] [--epochs 3] [--n-samples 2000] [--busy 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, os, resource, sys, time
side, out_dir, n, epochs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if side == "torch":
    import torch  # first: OpenMP starts with its default wait policy
    threads = torch.get_num_threads()
else:
    import modalab  # first: its wait (GOMP_SPINCOUNT, or the env) before torch loads OpenMP
    threads = 0
from modalab.experiments.config import compose_config
from modalab.experiments.runner import run
cfg = compose_config([
    f"data.n_samples={n}", f"trainer.max_epochs={epochs}", f"trainer.threads={threads}",
    "trainer.early_stopping.enabled=false", "trainer.enable_progress_bar=false",
    "eval.l2_grid=[0.01]", "eval.retrieval_ks=[1]", "eval.probe_modalities=false",
    f"output_dir={out_dir}", f"run_name={side}-{time.time_ns()}",
])
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu0, wall0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
result = run(cfg, quiet=True)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({
    "train_s": result.train_seconds,
    "wall_s": time.perf_counter() - wall0,
    "cpu_s": usage.ru_utime + usage.ru_stime - cpu0,
    "threads": result.training["threads"],
}))
"""


SIDES = ("modalab", "passive", "torch")
_UNSET = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "MKL_NUM_THREADS")


def _busy() -> None:
    while True:
        pass


def _side(side: str, out_dir: str, n: int, epochs: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in _UNSET}
    if side == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            "torch" if side == "torch" else "modalab",
            out_dir,
            str(n),
            str(epochs),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the {side} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--busy", type=int, default=0, help="spinning processes (load)")
    args = parser.parse_args()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"{cpus} CPUs; short run: shapes n={args.n_samples}, {args.epochs} epochs, CLIP; "
        f"{args.busy} busy processes"
    )
    busy = [mp.get_context("spawn").Process(target=_busy, daemon=True) for _ in range(args.busy)]
    for process in busy:
        process.start()
    times: dict[str, list[tuple[float, float, float]]] = {side: [] for side in SIDES}
    with tempfile.TemporaryDirectory() as out_dir:
        for repeat in range(args.repeats):
            for side in SIDES:
                load = os.getloadavg()[0]
                start = time.perf_counter()
                got = _side(side, out_dir, args.n_samples, args.epochs)
                threads = got["threads"]
                assert isinstance(threads, dict)
                row = (float(got["train_s"]), float(got["wall_s"]), float(got["cpu_s"]))  # type: ignore[arg-type]
                times[side].append(row)
                print(
                    f"[{repeat}] {side:8s} load {load:5.2f}  threads {threads['threads']} "
                    f"({threads['source']}, wait policy {threads['wait_policy'] or 'default'})  "
                    f"train {row[0]:.1f} s; run {row[1]:.1f} s wall, {row[2]:.1f} s CPU  "
                    f"(process {time.perf_counter() - start:.1f} s)"
                )
    for process in busy:
        process.terminate()
    med = {
        side: [statistics.median(r[i] for r in rows) for i in range(3)]
        for side, rows in times.items()
    }
    print(f"\n{'setting':10s} {'train wall (s)':>15s} {'run wall (s)':>13s} {'run CPU (s)':>12s}")
    for side, (train, wall, cpu) in med.items():
        print(f"{side:10s} {train:15.1f} {wall:13.1f} {cpu:12.1f}")
    for other in ("torch", "passive"):
        ratios = [t / m for t, m in zip(med[other], med["modalab"])]
        print(
            f"ratio {other} / modalab: train wall {ratios[0]:.2f}x, run wall {ratios[1]:.2f}x, "
            f"run CPU {ratios[2]:.2f}x (load average now {os.getloadavg()[0]:.2f} on {cpus} "
            f"CPUs, {args.busy} busy processes)"
        )


if __name__ == "__main__":
    main()
