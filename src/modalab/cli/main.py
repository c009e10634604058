"""The ``modalab`` command line.

Each subcommand lives in :data:`COMMANDS` as ``name -> (add_arguments, handler, help)``;
new commands are added there.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from modalab.cli import counterfactual as _counterfactual
from modalab.cli import report as report_cli
from modalab.cli.data import EPILOG_DATA, add_data_args, cmd_data
from modalab.cli.methods import add_methods_args, cmd_methods
from modalab.cli.sweep import EPILOG_SWEEP, add_sweep_args, cmd_sweep

__all__ = ["COMMANDS", "main"]

EPILOG_RUN = """\
overrides use Hydra syntax: GROUP=OPTION selects a config group option, KEY=VALUE sets a value.
A comma-separated value runs each choice in turn and prints one combined table.

examples:
  modalab run                                   # CLIP on the embedded `shapes` data
  modalab run method=supervised                 # the supervised late-fusion baseline
  modalab run method=clip,supervised            # both, one table
  modalab run data.n_samples=2000 trainer.max_epochs=3 seed=1
  modalab run --cfg                             # print the composed config and exit

  modalab run 'scenario=[missing]' scenario.missing.rate=0.5 store=results/demo

config groups: data=, model=, method=, scenario=, eval=, trainer=  (see `modalab list`)
"""


def _expand_overrides(overrides: Sequence[str]) -> list[list[str]]:
    """Expand Hydra sweep overrides (``a=1,2``) into the list of single-run override lists."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    choices: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            values = list(override.sweep_string_iterator())
            choices.append([f"{key}={v}" for v in values])
        else:
            choices.append([str(override.input_line)])
    return [list(combo) for combo in itertools.product(*choices)] if choices else [[]]


def _add_run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. method=supervised")
    parser.add_argument("--cfg", action="store_true", help="print the composed config and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or summaries")
    parser.add_argument(  # SUPPRESS: a global --verbose, if any, is not overridden
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="keep Lightning's banners, tips and notices (also MODALAB_VERBOSE=1)",
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import run

    if getattr(args, "verbose", False):
        os.environ["MODALAB_VERBOSE"] = "1"  # inherited by the runner (and sweep workers)
    console = Console()
    runs = _expand_overrides(args.overrides)
    configs = [compose_config(o) for o in runs]  # validate every run before training any
    if args.cfg:
        for cfg in configs:
            console.print(OmegaConf.to_yaml(cfg), markup=False)
        return 0
    results = []
    shared = set.intersection(*(set(o) for o in runs)) if runs else set()
    for overrides, cfg in zip(runs, configs):
        console.print(f"[bold]modalab run[/bold] {' '.join(overrides) or '(defaults)'}")
        label = " ".join(o for o in overrides if o not in shared) or cfg.method.name
        result = run(cfg, quiet=args.quiet)
        if not result.is_global_zero:
            continue  # a DDP worker process takes part in every run; rank 0 reports
        console.print(
            f"  run directory: {result.run_dir}  (train {result.train_seconds:.1f}s, "
            f"eval {result.eval_seconds:.1f}s)"
        )
        results.append((label, result))
    if results:
        for table in _results_tables(results):
            console.print(table)
    return 0


_DIAGNOSTICS = ("effective_rank", "uniformity", "alignment", "modality_gap")


def _value_column(table: Table, name: str) -> None:
    """A right-aligned value column whose header is never wrapped or abbreviated."""
    table.add_column(name, justify="right", no_wrap=True, min_width=len(name))


def _results_tables(results: Sequence[tuple[str, Any]]) -> list[Table]:
    """Accuracies (modality columns), retrieval (Recall@K columns), diagnostics (metric columns)."""
    accuracy = Table(title="frozen-representation accuracy (test split)")
    retrieval = Table(title="cross-modal retrieval (test split)")
    diagnostics = Table(title="representation diagnostics (test split)")
    for table in (accuracy, retrieval, diagnostics):
        table.add_column("run", overflow="fold")  # row labels wrap; metric names never do
    diagnostics.add_column("modality / pair", overflow="fold")
    diag_names: list[str] = []
    diag_rows: dict[tuple[str, str], dict[str, float]] = {}
    accuracy.add_column("metric", overflow="fold")
    retrieval.add_column("direction", overflow="fold")
    views: list[str] = []
    ks: list[str] = []
    acc_rows: dict[tuple[str, str], dict[str, float]] = {}
    ret_rows: dict[tuple[str, str], dict[str, float]] = {}
    for label, result in results:
        for record in result.metrics:
            if record.metric in _DIAGNOSTICS:
                diag_rows.setdefault((label, record.modality), {})[record.metric] = record.value
                if record.metric not in diag_names:
                    diag_names.append(record.metric)
            elif record.metric.startswith(("recall@", "recall_mp@")):
                ret_rows.setdefault((label, record.modality), {})[record.metric] = record.value
                if record.metric not in ks:
                    ks.append(record.metric)
            else:
                name = record.metric + (f" ({record.condition})" if record.condition else "")
                acc_rows.setdefault((label, name), {})[record.modality] = record.value
                if record.modality not in views:
                    views.append(record.modality)
    for view in views:
        _value_column(accuracy, view)
    for k in ks:
        _value_column(retrieval, k.replace("recall", "R"))
    for (label, name), values in acc_rows.items():
        accuracy.add_row(label, name, *[f"{values[v]:.3f}" if v in values else "" for v in views])
    for (label, direction), values in ret_rows.items():
        retrieval.add_row(
            label, direction, *[f"{values[k]:.3f}" if k in values else "" for k in ks]
        )
    for name in diag_names:
        _value_column(diagnostics, name)
    for (label, where), values in diag_rows.items():
        diagnostics.add_row(
            label, where, *[f"{values[n]:.3f}" if n in values else "" for n in diag_names]
        )
    tables = [accuracy, retrieval] if ret_rows else [accuracy]
    return [*tables, diagnostics] if diag_rows else tables


def _add_list_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind",
        nargs="?",
        default="all",
        help="datasets | sources | encoders | objectives | methods | scenarios | configs | all",
    )


def _cmd_list(args: argparse.Namespace) -> int:
    from modalab.catalog import CONFIG_GROUPS, static_catalog

    console = Console()
    catalog = static_catalog()  # a snapshot kept equal to the registries by a test: no imports
    kinds = catalog["kinds"]
    wanted = list(kinds) if args.kind == "all" else [args.kind]
    for kind in wanted:
        if kind == "configs":
            continue
        if kind not in kinds:
            console.print(f"unknown kind {kind!r}; valid: {', '.join([*kinds, 'configs'])}")
            return 2
        table = Table(title=kind)
        table.add_column("name")
        table.add_column("description")
        for name, description in kinds[kind]:
            table.add_row(name, description)
        console.print(table)
    if args.kind in ("all", "configs"):
        table = Table(title="config groups")
        table.add_column("group")
        table.add_column("options")
        for group in CONFIG_GROUPS:
            table.add_row(group, ", ".join(catalog["config_groups"][group]))
        console.print(table)
    return 0


#: Subcommands: name → (add_arguments, handler, one-line help, epilog).
COMMANDS: dict[
    str,
    tuple[
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace], int],
        str,
        str,
    ],
] = {
    "run": (_add_run_args, _cmd_run, "train and evaluate one or more configurations", EPILOG_RUN),
    "list": (_add_list_args, _cmd_list, "list registered datasets, encoders, methods, ...", ""),
    "sweep": (
        add_sweep_args,
        cmd_sweep,
        "run a study grid in parallel into a results store",
        EPILOG_SWEEP,
    ),
    "data": (
        add_data_args,
        cmd_data,
        "list, download and verify the real datasets' files (and build CREMA-D's manifest)",
        EPILOG_DATA,
    ),
    "methods": (add_methods_args, cmd_methods, "list the training methods and their keys", ""),
    "counterfactual": (
        _counterfactual.add_arguments,
        _counterfactual.command,
        "counterfactual modality analysis of a run or a study's runs (Shapley, swap tests, ...)",
        _counterfactual.EPILOG,
    ),
    "report": (
        report_cli.add_report_args,
        report_cli.cmd_report,
        "write the Markdown + HTML report (tables, plots) of a run, sweep or results store",
        report_cli.EPILOG_REPORT,
    ),
    "compare": (
        report_cli.add_compare_args,
        report_cli.cmd_compare,
        "side-by-side table of several runs, sweeps or results stores",
        report_cli.EPILOG_COMPARE,
    ),
    "tables": (
        report_cli.add_tables_args,
        report_cli.cmd_tables,
        "the tables of study files (their tables: section) from their results stores",
        report_cli.EPILOG_TABLES,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="modalab",
        description=(
            "modalab: self-supervised multimodal representation learning under adverse "
            "conditions. Pre-train, stress, repair and question multimodal encoders."
        ),
        epilog="Run `modalab COMMAND --help` for the options of a command.",
    )
    from modalab import __version__

    parser.add_argument("--version", action="version", version=f"modalab {__version__}")
    parser.add_argument(
        "--verbose",
        action="store_true",
        dest="verbose_errors",
        help="show full tracebacks of errors (as HYDRA_FULL_ERROR=1 does)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (add_args, handler, help_text, epilog) in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog or None,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_args(p)
        p.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modalab`` console script."""
    from modalab.experiments.errors import (
        RunInterrupted,
        TrainingError,
        explain_error,
        show_traceback,
    )

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except RunInterrupted as error:
        print(f"modalab: {error}", file=sys.stderr)
        return 128 + error.signal_number
    except TrainingError as error:
        print(f"modalab: training failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl+C outside training (composing, building data, evaluating)
        print("modalab: interrupted (SIGINT); the current run recorded no result.", file=sys.stderr)
        return 130
    except Exception as error:  # config (2), data (3), environment (4); bugs keep a traceback
        explained = explain_error(error)
        if explained is None or args.verbose_errors or show_traceback():
            raise
        print(explained.message, file=sys.stderr)
        return explained.code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
