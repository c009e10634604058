"""Time every scenario on a whole `shapes` split (vectorised: one pass per split).

    python benchmarks/bench_scenarios.py [--n-samples 10000]

Prints, per scenario, the median wall time to transform the split and the throughput.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from _common import timeit
from modalab.data import make_shapes
from modalab.scenarios import build_scenarios

PARAMS = {
    "missing": {"rate": 0.5},
    "semi_paired": {"paired_fraction": 0.5},
    "gaussian_noise": {"snr_db": 5.0},
    "occlusion": {"area": 0.25},
    "blur": {"sigma": 1.0},
    "background_noise": {"snr_db": 5.0},
    "word_dropout": {"rate": 0.3},
    "downsample": {"factor": 4.0, "modalities": ["image", "audio"]},
    "misalign": {"rate": 0.5},
    "label_scarcity": {"fraction": 0.1},
    "label_noise": {"rate": 0.3},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-samples", type=int, default=10000)
    args = parser.parse_args()
    splits = make_shapes(n_samples=args.n_samples)
    data = splits.train
    default_dir = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    os.environ.setdefault("MODALAB_DATA", str(default_dir))
    print(f"scenarios on the shapes train split: {len(data)} samples")
    print(f"{'scenario':<18} {'ms':>9} {'samples/s':>12}")
    for name, params in PARAMS.items():
        if name == "background_noise" and not (Path(os.environ["MODALAB_DATA"]) / "esc10").exists():
            print(f"{name:<18} {'skipped: ESC-10 clips not found (MODALAB_DATA)':>22}")
            continue
        (scenario,) = build_scenarios({name: params}, splits.info)
        seconds = timeit(lambda s=scenario: s.set_random_state(0)(data), repeats=3)
        print(f"{name:<18} {seconds * 1e3:9.1f} {len(data) / seconds:12.0f}")


if __name__ == "__main__":
    main()
