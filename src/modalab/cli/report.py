"""``modalab report`` and ``modalab compare``: look at the results of runs and sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = [
    "EPILOG_COMPARE",
    "EPILOG_REPORT",
    "add_compare_args",
    "add_report_args",
    "cmd_compare",
    "cmd_report",
]

EPILOG_REPORT = """\
PATH is a results store (rows/*.parquet), a folder of run directories (a sweep) or one run
directory written by `modalab run`.

writes OUTPUT/report.md, OUTPUT/report.html (self-contained: figures embedded) and
OUTPUT/figures/*.png|pdf.

examples:
  modalab run method=clip,supervised seed=0,1,2 output_dir=runs/cmp --quiet
  modalab report runs/cmp                          # -> runs/cmp/report/
  modalab report runs/cmp --output docs/report --formats png --baseline supervised
  modalab report runs/cmp --test paired --no-embedding
"""

EPILOG_COMPARE = """\
Each PATH is a results store, a sweep folder or a run directory; the table has one column per
PATH and method (mean ± std over seeds, number of seeds in brackets).

examples:
  modalab compare runs/a runs/b
  modalab compare runs/a runs/b --labels before after --metric linear_probe_acc
  modalab compare runs/a runs/b --output comparison.md
"""


def add_report_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab report``."""
    parser.add_argument("path", help="results store, sweep folder or run directory")
    parser.add_argument("--output", "-o", default=None, help="output folder (default PATH/report)")
    parser.add_argument("--baseline", default="supervised", help="method to test against")
    parser.add_argument(
        "--test", choices=("welch", "paired"), default="welch", help="significance test"
    )
    parser.add_argument(
        "--formats", default="png,pdf", help="figure files to write, comma-separated (png,pdf,svg)"
    )
    parser.add_argument("--dpi", type=int, default=110, help="resolution of the PNG figures")
    parser.add_argument("--metric", default="linear_probe_acc", help="metric of bars and curves")
    parser.add_argument(
        "--embedding-samples", type=int, default=300, help="test samples per embedding map"
    )
    parser.add_argument(
        "--no-embedding", action="store_true", help="skip the embedding maps (no model loading)"
    )
    parser.add_argument("--title", default="", help="page title")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of ``args.path``."""
    from modalab.experiments.collect import ResultsNotFoundError
    from modalab.experiments.report import ReportConfig, build_report

    console = Console()
    try:
        config = ReportConfig(
            baseline=args.baseline,
            test=args.test,
            formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
            dpi=args.dpi,
            embedding=not args.no_embedding,
            embedding_samples=args.embedding_samples,
            curve_metric=args.metric,
            title=args.title,
        )
        files = build_report(args.path, args.output, config, quiet=args.quiet)
    except (ResultsNotFoundError, ValueError) as error:
        console.print(f"modalab report: {error}", markup=False, style="red")
        return 2
    console.print(f"report: {files.markdown}", markup=False)
    console.print(f"page:   {files.html}", markup=False)
    console.print(
        f"figures: {len(files.figures)} files in {Path(files.markdown).parent / 'figures'}",
        markup=False,
    )
    for note in files.notes:
        console.print(f"note: {note}", markup=False)
    return 0


def add_compare_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab compare``."""
    parser.add_argument("paths", nargs="+", help="results stores, sweep folders or run directories")
    parser.add_argument("--labels", nargs="+", default=None, help="one column label per path")
    parser.add_argument(
        "--metric", action="append", default=None, help="keep only this metric (repeatable)"
    )
    parser.add_argument("--output", "-o", default=None, help="also write the table (.md or .csv)")


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the side-by-side table of ``args.paths``."""
    from modalab.experiments.collect import ResultsNotFoundError
    from modalab.experiments.io import atomic_write_text
    from modalab.experiments.report import compare_results, config_differences, markdown_table

    console = Console()
    try:
        frame = compare_results(args.paths, args.labels, args.metric)
        differences = config_differences(args.paths)
    except (ResultsNotFoundError, ValueError) as error:
        console.print(f"modalab compare: {error}", markup=False, style="red")
        return 2
    table = Table(title="comparison (mean ± std over seeds, seeds in brackets)")
    for column in frame.columns:
        if "/" in str(column):  # a value column: header kept whole
            table.add_column(str(column), no_wrap=True, min_width=len(str(column)))
        else:  # row labels wrap
            table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*[str(v) for v in row])
    console.print(table)
    for warning in differences:
        console.print(f"warning: {warning}", markup=False, style="yellow")
    if args.output:
        output = Path(args.output)
        if output.suffix == ".csv":
            atomic_write_text(output, frame.to_csv(index=False))
        elif output.suffix == ".md":
            atomic_write_text(output, markdown_table(frame) + "\n")
        else:
            console.print(f"modalab compare: --output must end in .md or .csv, got {output}")
            return 2
        console.print(f"written: {output}", markup=False)
    return 0
