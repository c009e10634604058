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
  modalab sweep studies/missing_modality.yaml --print-hydra    # SLURM via Hydra submitit
"""


def add_sweep_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab sweep``."""
    parser.add_argument("study", help="the study YAML file")
    parser.add_argument("--jobs", "-j", type=int, default=None, help="parallel worker processes")
    parser.add_argument("--smoke", action="store_true", help="run the study's tiny variant")
    parser.add_argument("--store", default=None, help="results store folder (default: study's)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs and exit")
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
    runs, store = expand_study(spec, smoke=args.smoke, store=args.store)
    if args.print_hydra:
        for command in hydra_commands(runs, args.print_hydra):
            print(command)
        return 0
    if args.dry_run:
        finished = ResultsStore(store).run_ids()
        for run in runs:
            state = "done" if run.run_id in finished else "todo"
            console.print(f"{state}  {run.run_id}  {run.label}", markup=False)
        return 0
    jobs = args.jobs or spec.jobs
    if jobs < 1:
        console.print("--jobs must be at least 1")
        return 2
    summary = run_sweep(
        runs, store, jobs=jobs, progress=lambda line: console.print(line, markup=False)
    )
    console.print(
        f"sweep {spec.name}: {summary.done} run, {summary.skipped} skipped, "
        f"{len(summary.failed)} failed in {summary.seconds:.1f}s; rows in {summary.store}",
        markup=False,
    )
    for label, error in summary.failed:
        console.print(f"  failed: {label}: {error}", markup=False)
    return 1 if summary.failed else 0
