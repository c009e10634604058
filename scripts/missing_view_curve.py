r"""Missing-view curves of a finished run, from one encoding pass of its test split.

Two curves, both on the cached embeddings of ``modalab.counterfactual``:

* **random drop**: accuracy when each view is missing independently with rate ``r`` (at least
  one view kept per sample; :func:`~modalab.counterfactual.cached_missing_rate_curve`);
* **k of M views**: accuracy with exactly ``k`` views present, for every one of the
  ``C(M, k)`` subsets (min, mean, max over subsets, and the best and worst subset).

Usage::

    modalab run data=mfeat method=supervised_robust method.fill=absent \
        method.dropout_rate=0.3 run_name=mfeat-robust
    python scripts/missing_view_curve.py runs/mfeat-robust
"""

from __future__ import annotations

import argparse
import itertools

import torch

from modalab.counterfactual import cached_missing_rate_curve, encode_dataset
from modalab.experiments.counterfactual_run import build_predictor
from modalab.experiments.rundir import load_run


def main() -> None:
    """Print both curves as Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--rates", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9")
    args = parser.parse_args()
    loaded = load_run(args.run_dir)
    predictor = build_predictor(loaded)
    with torch.no_grad():
        test = encode_dataset(predictor, loaded.splits.test)
        rates = [float(r) for r in args.rates.split(",")]
        print("| drop rate | views missing (share) | accuracy |\n|---|---|---|")
        for point in cached_missing_rate_curve(predictor, test, rates):
            print(f"| {point.rate:.1f} | {point.missing_fraction:.3f} | {point.accuracy:.3f} |")
        names = list(predictor.modalities)
        n = test.num_samples
        alone = {}
        print("\n| views present | subsets | min | mean | max | worst subset | best subset |")
        print("|---|---|---|---|---|---|---|")
        for k in range(len(names), 0, -1):
            scores = {}
            for subset in itertools.combinations(names, k):
                present = {m: torch.full((n,), m in subset, dtype=torch.bool) for m in names}
                logits = predictor.predict(dict(test.embeddings), present)
                scores[subset] = float((logits.argmax(1).cpu() == test.label).float().mean())
                if k == 1:
                    alone[subset[0]] = scores[subset]
            worst, best = min(scores, key=scores.__getitem__), max(scores, key=scores.__getitem__)
            values = list(scores.values())
            print(
                f"| {k} | {len(values)} | {min(values):.3f} | {sum(values) / len(values):.3f} | "
                f"{max(values):.3f} | {'+'.join(worst)} | {'+'.join(best)} |"
            )
        print("\n| view alone | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        print("| accuracy | " + " | ".join(f"{alone[m]:.3f}" for m in names) + " |")


if __name__ == "__main__":
    main()
