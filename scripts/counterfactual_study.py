"""Counterfactual analysis of every run of a study, compared with the known truth (question 6).

For each run of the study's results store (trained by ``modalab sweep STUDY``), the analyses of
``modalab counterfactual`` (ablation, perceptual score, modality Shapley values and their
interaction) run on the test split of the run directory; the pooled (all-class) statistics
are appended to a results store, one Parquet file per run, with the run's own metadata
(``study``, ``data``, ``method``, ``seed``, ...). Metric names: ``ablation``,
``perceptual_score``, ``perceptual_score_normalised``, ``shapley``, ``shapley_share``,
``shapley_v_full``, ``shapley_v_empty``, ``shapley_interaction`` (modality ``a|b``) and
``shapley_solo`` (``v({m}) - v(∅)``, the modality's effect alone: for two modalities
``phi_m - I / 2``) and ``shapley_v_only`` (``v({m})``, the accuracy with only ``m`` present,
i.e. the other modality missing at test time).

The expected answer is written next to them (metric ``truth_share``; ``truth_dominant`` 1 for
the modality expected to dominate): for ``shapes`` it is derived from the run's config — the
modalities that carry every label factor share the label equally, a modality that carries
none gets 0, and when no modality carries every factor (synergy) each modality alone is
uninformative and the effect is the interaction; for AV-MNIST it is the intuition that the
clean MNIST image dominates the spoken digit of an unseen speaker (``--intuition``).

Usage::

    modalab sweep studies/counterfactual.yaml
    python scripts/counterfactual_study.py studies/counterfactual.yaml
    # -> results/counterfactual_analysis/rows/<run_id>.parquet
    modalab tables studies/counterfactual.yaml        # its tables (the study's tables: section)
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from modalab.experiments.counterfactual_run import analyse_run
from modalab.experiments.store import COLUMNS, ResultsStore
from modalab.experiments.sweep import load_study

warnings.filterwarnings("ignore")

ANALYSES = ("ablation", "perceptual", "shapley")


def truth(
    config: dict[str, Any], modalities: list[str], intuition: dict[str, str]
) -> dict[str, tuple[float, float]]:
    """Expected ``{modality: (share, dominant)}`` of one run from its data config."""
    data = config["data"]
    if data["name"] != "shapes":
        top = intuition.get(data["name"])
        if top is None:
            return {}
        return {m: (float("nan"), float(m == top)) for m in modalities}
    factors = set(data["label_factors"])
    carries = {m: set(data["carries"].get(m, [])) for m in modalities}
    alone = [m for m in modalities if factors <= carries[m]]
    if alone:
        return {m: (1.0 / len(alone) if m in alone else 0.0, float(m in alone)) for m in modalities}
    # Synergy: no modality alone predicts the label; Shapley splits the interaction equally
    # among the modalities that carry at least one label factor.
    involved = [m for m in modalities if factors & carries[m]]
    return {m: (1.0 / len(involved) if m in involved else 0.0, float("nan")) for m in modalities}


def pooled_rows(table: pd.DataFrame) -> list[tuple[str, str, float]]:
    """``(metric, modality, value)`` of the all-class statistics of an analysis table."""
    rows = table[table["class"] == "all"]
    out: list[tuple[str, str, float]] = []
    names = {"share": "shapley_share", "v_full": "shapley_v_full", "v_empty": "shapley_v_empty"}
    shapley: dict[str, float] = {}
    interactions: dict[tuple[str, str], float] = {}
    for r in rows.itertuples(index=False):
        stat = str(r.statistic)
        if r.analysis == "interaction":
            interactions[(str(r.modality), str(r.target))] = float(r.value)
            out.append(("shapley_interaction", f"{r.modality}|{r.target}", float(r.value)))
            continue
        modality = "fused" if r.modality in ("full", "empty") else str(r.modality)
        if stat == "shapley":
            shapley[modality] = float(r.value)
        out.append((names.get(stat, stat), modality, float(r.value)))
    if len(shapley) == 2 and len(interactions) == 1:
        # Two players: phi_m = solo_m + I / 2, so the effect alone is phi_m - I / 2.
        (interaction,) = interactions.values()
        empty = next(float(r.value) for r in rows.itertuples() if r.statistic == "v_empty")
        out += [("shapley_solo", m, v - interaction / 2) for m, v in shapley.items()]
        out += [("shapley_v_only", m, empty + v - interaction / 2) for m, v in shapley.items()]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("study", help="study file, e.g. studies/counterfactual.yaml")
    parser.add_argument("--out", default="results/counterfactual_analysis", help="store folder")
    parser.add_argument("--store", default=None, help="the sweep's store (default: the study's)")
    parser.add_argument("--runs", default=None, help="its run folder (default: the study's)")
    parser.add_argument("--metric", default="accuracy", choices=["accuracy", "log_prob"])
    parser.add_argument("--max-samples", type=int, default=0, help="0: the whole test split")
    parser.add_argument(
        "--intuition", nargs="*", default=["avmnist=image"], help="DATA=MODALITY expected on top"
    )
    args = parser.parse_args()
    spec = load_study(args.study)
    intuition = dict(item.split("=", 1) for item in args.intuition)
    store, run_root = args.store or spec.store, args.runs or spec.output_dir
    runs = ResultsStore(store).read()
    if runs.empty:
        raise SystemExit(f"{store} holds no runs: run `modalab sweep {args.study}` first.")
    out = ResultsStore(args.out)
    meta_columns = [c for c in COLUMNS if c not in ("metric", "modality", "condition", "value")]
    start = time.perf_counter()
    for run_id, part in runs.groupby("run_id", sort=True):
        if out.has(str(run_id)):
            continue
        run_dir = Path(run_root) / str(run_id)
        t = time.perf_counter()
        report, _ = analyse_run(
            run_dir,
            analyses=ANALYSES,
            metric=args.metric,
            seed=int(part["seed"].iloc[0]),
            max_samples=args.max_samples,
        )
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        meta = part.iloc[0][meta_columns].to_dict()
        records = [
            {**meta, "metric": metric, "modality": modality, "condition": args.metric, "value": v}
            for metric, modality, v in pooled_rows(report.table)
        ]
        for modality, (share, dominant) in truth(
            config, list(report.settings["modalities"]), intuition
        ).items():
            records.append(
                {
                    **meta,
                    "metric": "truth_share",
                    "modality": modality,
                    "condition": args.metric,
                    "value": share,
                }
            )
            records.append(
                {
                    **meta,
                    "metric": "truth_dominant",
                    "modality": modality,
                    "condition": args.metric,
                    "value": dominant,
                }
            )
        out.append(str(run_id), records)
        label = " ".join(str(part.iloc[0][c]) for c in ("data", "method", "seed"))
        print(f"{label}: {time.perf_counter() - t:.1f} s", flush=True)
    print(f"total {time.perf_counter() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
