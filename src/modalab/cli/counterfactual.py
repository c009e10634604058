"""``modalab counterfactual RUN_DIR``: counterfactual modality analysis of a finished run."""

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
debias (counterfactual-VQA style removal of a modality's direct effect; needs --debias-modality).

Writes RUN_DIR/counterfactual/counterfactual.{parquet,csv}, settings.json and PNG+PDF plots.

examples:
  modalab run method=supervised run_name=sup
  modalab counterfactual runs/sup
  modalab counterfactual runs/sup --analyses shapley,swap --metric log_prob
  modalab counterfactual runs/clip --head-hidden 128       # CLIP: fits a downstream head first
  modalab counterfactual runs/sup --analyses debias --debias-modality text
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab counterfactual``."""
    parser.add_argument("run_dir", help="a run directory written by `modalab run`")
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
        default=0,
        help="hidden width of the head fitted on frozen features of encoder-only runs (0: linear)",
    )
    parser.add_argument(
        "--allow-unfinished",
        action="store_true",
        help="analyse a run without metrics.json (interrupted or failed) from its last checkpoint",
    )


def command(args: argparse.Namespace) -> int:
    """Run the analyses and print the pooled summary."""
    from modalab.experiments.counterfactual_run import analyse_run
    from modalab.experiments.rundir import unfinished_reason

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
        head_hidden=args.head_hidden,
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
