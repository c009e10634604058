"""``modalab counterfactual RUN_DIR | --study STUDY``: counterfactual modality analysis."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table

__all__ = ["EPILOG", "add_arguments", "command"]

EPILOG = """\
analyses: interventions (remove / mean / noise / permute / swap each modality), ablation
(metric drop when a modality is removed), perceptual (Gat et al. 2021), shapley (exact modality
Shapley values and pairwise interactions), swap (which modality the prediction follows),
debias (counterfactual-VQA style removal of a modality's direct effect; needs --debias-modality),
missing_rate (accuracy with each modality dropped at random, --missing-rates), views_present
(the metric with exactly k of the M modalities present, every subset; min/mean/max per k).

Writes RUN_DIR/counterfactual/counterfactual.{parquet,csv}, settings.json and PNG+PDF plots.
--study STUDY analyses every run of the study's store (ablation, perceptual, shapley,
views_present; skips runs already analysed) and writes the pooled values with the known truth
to the store of the study's `kind: counterfactual` table, read by `modalab tables STUDY`.

examples:
  modalab run method=supervised run_name=sup
  modalab counterfactual runs/sup
  modalab counterfactual runs/sup --analyses shapley,swap --metric log_prob
  modalab counterfactual runs/clip --head-hidden 128       # CLIP: fits a downstream head first
  modalab counterfactual runs/sup --analyses debias --debias-modality text
  modalab counterfactual runs/mfeat --analyses missing_rate,views_present --missing-rates 0 0.5
  modalab counterfactual --study studies/counterfactual.yaml   # after `modalab sweep` of it
"""


def _pair(text: str) -> tuple[str, str]:
    """``DATA=MODALITY`` (argparse reports the error of a malformed one)."""
    data, modality = text.split("=")
    return data, modality


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab counterfactual``."""
    parser.add_argument("run_dir", nargs="?", help="a run directory written by `modalab run`")
    parser.add_argument("--study", help="analyse every run of this study file's store instead")
    parser.add_argument("--smoke", action="store_true", help="--study: its --smoke sweep")
    parser.add_argument(
        "--intuition",
        nargs="*",
        type=_pair,
        # On the official AV-MNIST protocol (the default of data=avmnist) the unimodal
        # baselines put the audio ahead of the PCA-degraded image (docs/datasets.md).
        default=[("avmnist", "audio")],
        metavar="DATA=MODALITY",
        help="--study: the modality expected to dominate where the data has no known truth",
    )
    parser.add_argument(
        "--missing-rates",
        nargs="+",
        type=float,
        metavar="RATE",
        help="drop rates of missing_rate (default 0 0.1 ... 0.9)",
    )
    parser.add_argument(
        "--analyses",
        default="interventions,ablation,perceptual,shapley,swap",
        help="comma-separated analyses (default: all but debias)",
    )
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--metric", default="accuracy", choices=["accuracy", "log_prob"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-samples", type=int, default=0, help="0: the whole split")
    parser.add_argument("--debias-modality", default=None, help="dominant modality to debias")
    parser.add_argument(
        "--head-hidden",
        type=int,
        default=None,
        help="hidden width of the head fitted on frozen features of encoder-only runs (0: "
        "linear; default 0, or with --study the head_hidden of its counterfactual table)",
    )
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="analyse a run without metrics.json (interrupted or failed) from its last checkpoint",
    )


def command(args: argparse.Namespace) -> int:
    """Run the analyses and print the pooled summary."""
    from modalab.counterfactual import AnalysisSettings
    from modalab.experiments.counterfactual_run import analyse_run, analyse_study
    from modalab.experiments.rundir import unfinished_reason

    if (args.study is None) == (args.run_dir is None):
        print(
            "modalab counterfactual: give a run directory (`modalab counterfactual runs/NAME`) "
            "or a study (`modalab counterfactual --study studies/NAME.yaml`), not both.",
            file=sys.stderr,
        )
        return 2
    if args.study:
        out = analyse_study(
            args.study,
            args.smoke,
            args.metric,
            args.max_samples,
            dict(args.intuition),
            head_hidden=args.head_hidden,
        )
        tables = f"modalab tables {args.study}" + (" --smoke" if args.smoke else "")
        print(f"wrote the analysis of every run to {out}; its tables: `{tables}`")
        return 0
    reason = unfinished_reason(args.run_dir)
    if reason and not args.allow_unfinished:
        print(
            f"modalab counterfactual: {args.run_dir} is an unfinished run ({reason}). Finish it "
            "with `modalab run ... run_name=NAME resume=true`, or analyse its last checkpoint "
            "anyway with --allow-unfinished.",
            file=sys.stderr,
        )
        return 2
    if reason:
        print(f"warning: analysing an unfinished run ({reason}).", file=sys.stderr)
    analyses = [a.strip() for a in args.analyses.split(",") if a.strip()]
    report, written = analyse_run(
        args.run_dir,
        analyses,
        split=args.split,
        metric=args.metric,
        seed=args.seed,
        max_samples=args.max_samples,
        debias_modality=args.debias_modality,
        head_hidden=args.head_hidden or 0,
        missing_rates=args.missing_rates or AnalysisSettings.missing_rates,
    )
    console = Console()
    summary = report.summary()
    table = Table(
        title=f"counterfactual analysis ({args.split} split, "
        f"{report.settings['num_samples']} samples)"
    )
    table.add_column("analysis:statistic")
    for column in summary.columns:
        table.add_column(str(column), justify="right")
    for row, values in summary.iterrows():
        table.add_row(str(row), *["" if v != v else f"{v:.3f}" for v in values])
    console.print(table)
    console.print(f"wrote {len(written)} files to {written[0].parent}")
    return 0
