"""``modalab sweep STUDY.yaml``: run a study grid in parallel, resumable, into a results store."""

from __future__ import annotations

import argparse

from rich.console import Console

__all__ = ["EPILOG_SWEEP", "add_sweep_args", "cmd_sweep"]

EPILOG_SWEEP = """\
A study file lists methods, scenarios (each with a severity key and values), seeds and the
results store; the grid is methods x scenarios x severities x seeds. Runs already in the
store are skipped, so running the same command again resumes an interrupted sweep.

examples:
  modalab sweep studies/missing_modality.yaml --jobs 2
  modalab sweep studies/missing_modality.yaml --smoke          # the tiny CI variant
  modalab sweep studies/missing_modality.yaml --dry-run        # list the runs and exit
  modalab sweep studies/avmnist_baselines.yaml --override trainer.accelerator=gpu \
      --override trainer.deterministic=warn --jobs 13          # the same grid on a GPU
  modalab sweep studies/missing_modality.yaml --print-hydra    # SLURM via Hydra submitit
  modalab sweep studies/missing_modality.yaml --summary        # curves from the store
  modalab sweep studies/missing_modality.yaml --summary --metric knn_acc --modality image
"""


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab sweep``."""
    parser.add_argument("study", help="the study YAML file")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel worker processes")
    parser.add_argument("--smoke", action="store_true", help="run the study's tiny variant")
    parser.add_argument("--store", default=None, help="results store folder (default: study's)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and exit")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="add an override to every run of the grid (repeatable; part of each run's "
        "identity, e.g. trainer.accelerator=gpu)",
    )
    parser.add_argument(
        "--order",
        choices=("seed", "grid"),
        default="seed",
        help="run seed by seed, so that a stopped sweep holds whole replicates (default), "
        "or in the grid's order (method by method)",
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=None,
        metavar="LABEL",
        help="run only these dataset labels of the study's datasets: axis",
    )
    parser.add_argument("--summary", action="store_true", help="print the curves and exit")
    parser.add_argument("--metric", default="linear_probe_acc", help="metric of the curves")
    parser.add_argument("--modality", default="fused", help="modality of the curves")
    parser.add_argument("--baseline", default="supervised", help="effective-robustness baseline")
    parser.add_argument(
        "--print-hydra",
        nargs="?",
        const="submitit_slurm",
        default=None,
        metavar="LAUNCHER",
        help="print equivalent Hydra multirun commands for a launcher (default submitit_slurm)",
    )


def cmd_sweep(args: argparse.Namespace) -> int:
    """Expand, then run (or list, or print as Hydra commands) a study."""
    from modalab.experiments.store import ResultsStore
    from modalab.experiments.sweep import expand_study, hydra_commands, load_study, run_sweep

    console = Console()
    spec = load_study(args.study)
    bad = [o for o in args.override if "=" not in o]
    if bad:
        console.print(f"--override takes KEY=VALUE, not {bad}", markup=False)
        return 2
    spec.overrides = [*spec.overrides, *args.override]
    if args.datasets:
        unknown = sorted(set(args.datasets) - set(spec.datasets))
        if unknown:
            console.print(
                f"--datasets {unknown} not among the study's datasets {sorted(spec.datasets)}",
                markup=False,
            )
            return 2
        spec.datasets = {k: v for k, v in spec.datasets.items() if k in args.datasets}
        spec.smoke.datasets = {k: v for k, v in spec.smoke.datasets.items() if k in spec.datasets}
    runs, store = expand_study(spec, smoke=args.smoke, store=args.store)
    if args.print_hydra:
        for command in hydra_commands(runs, args.print_hydra):
            print(command)
        return 0
    if args.summary:
        print_summary(console, store, args.metric, args.modality, args.baseline)
        return 0
    if args.dry_run:
        finished = ResultsStore(store).run_ids()
        corrupt = ResultsStore(store).corrupt_ids()
        for run in runs:
            state = "done" if run.run_id in finished else "todo"
            state = "corrupt (re-run)" if run.run_id in corrupt else state
            console.print(f"{state}  {run.run_id}  {run.label}", markup=False)
        return 0
    jobs = args.jobs or spec.jobs
    if jobs < 1:
        console.print("--jobs must be at least 1")
        return 2
    summary = run_sweep(
        runs,
        store,
        jobs=jobs,
        progress=lambda line: console.print(line, markup=False),
        order=args.order,
    )
    console.print(
        f"sweep {spec.name}: {summary.done} ran, {summary.skipped} skipped, "
        f"{len(summary.failed)} failed in {summary.seconds:.1f}s; rows in {summary.store}",
        markup=False,
    )
    for label, error in summary.failed:
        console.print(f"  failed: {label}: {error}", markup=False)
    print_summary(console, store, args.metric, args.modality, args.baseline)
    return 1 if summary.failed else 0


def print_summary(console: Console, store: str, metric: str, modality: str, baseline: str) -> None:
    """Print the robustness curves (mean ± std over seeds) and their summary numbers."""
    from rich.table import Table

    from modalab.experiments.curves import robustness_curves, robustness_scores
    from modalab.experiments.store import ResultsStore

    curves = robustness_curves(ResultsStore(store).read(), metric, modality)
    if curves.empty:
        console.print(f"no {metric} ({modality}) rows in {store} yet", markup=False)
        return
    table = Table(title=f"{metric} ({modality}) vs severity, mean ± std over seeds")
    for column in ("data", "scenario", "severity key", "method", "severity", "value", "seeds"):
        table.add_column(column, justify="right" if column in ("value", "seeds") else "left")
    for row in curves.itertuples():
        table.add_row(
            str(row.data),
            str(row.scenario),
            str(row.severity_key),
            str(row.method),
            f"{row.severity:g}",
            f"{row.mean:.3f} ± {0.0 if row.seeds < 2 else row.std:.3f}",
            str(row.seeds),
        )
    console.print(table)
    scores = robustness_scores(curves, baseline)
    table = Table(title=f"robustness summaries (effective robustness vs {baseline})")
    for column in (
        "data",
        "scenario",
        "method",
        "clean",
        "hardest",
        "AUC",
        "relative",
        "effective",
    ):
        table.add_column(
            column, justify="left" if column in ("data", "scenario", "method") else "right"
        )
    for row in scores.itertuples():
        table.add_row(
            str(row.data),
            str(row.scenario),
            str(row.method),
            f"{row.clean:.3f}",
            f"{row.hardest:.3f}",
            f"{row.auc:.3f}",
            f"{row.relative_robustness:.3f}",
            f"{row.effective_robustness:+.3f}",
        )
    console.print(table)
