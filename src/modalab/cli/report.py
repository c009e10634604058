"""``modalab report`` and ``modalab compare``: look at the results of runs and sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = [
    "EPILOG_COMPARE",
    "EPILOG_REPORT",
    "EPILOG_TABLES",
    "add_compare_args",
    "add_report_args",
    "add_tables_args",
    "cmd_compare",
    "cmd_report",
    "cmd_tables",
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
  modalab report runs/cmp --test welch --correction bh --no-embedding
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
        "--test",
        choices=("auto", "paired_t", "wilcoxon", "welch", "paired"),
        default="auto",
        help="significance test against the baseline (auto: paired t over shared seeds, else "
        "Welch; paired: paired_t)",
    )
    parser.add_argument(
        "--correction",
        choices=("holm", "bh", "none"),
        default="holm",
        help="multiple-comparison correction within each table (default holm)",
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
            correction=args.correction,
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


EPILOG_TABLES = """\
Each STUDY is a study file whose `tables:` section names its tables (docs/study.md); they are
rendered from the results store that `modalab sweep STUDY` wrote.

examples:
  modalab tables studies/missing_modality.yaml --figures docs/study
  modalab tables studies/repair_*.yaml --smoke --out repair_tables.md
  modalab tables studies/*.yaml --check docs/study.md     # exit 1 if a table or claim is stale
"""


def add_tables_args(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``modalab tables``."""
    parser.add_argument("studies", nargs="+", help="study files (studies/<x>.yaml)")
    parser.add_argument("--results", default=None, help="folder of the stores (default: study's)")
    parser.add_argument("--smoke", action="store_true", help="read the <store>_smoke stores")
    parser.add_argument("--out", default=None, help="also write the Markdown to this file")
    parser.add_argument("--figures", default=None, help="also write the PNG figures here")
    parser.add_argument(
        "--check",
        default=None,
        help="exit 1 unless every table appears verbatim in this file and its claims hold",
    )
    parser.add_argument(
        "--test",
        default="auto",
        choices=["auto", "paired_t", "wilcoxon", "welch"],
        help="test against the baseline (auto: paired t over shared seeds, else Welch)",
    )
    parser.add_argument(
        "--correction", default="holm", choices=["holm", "bh", "none"], help="within each table"
    )


def cmd_tables(args: argparse.Namespace) -> int:
    """Print (or check) the tables of ``args.studies``."""
    from modalab.experiments.config import ConfigError
    from modalab.experiments.io import atomic_write_text
    from modalab.experiments.tables import check_claims, check_document, study_tables

    try:
        sections = [
            study_tables(s, args.results, args.smoke, args.test, args.correction, args.figures)
            for s in args.studies
        ]
    except ConfigError as error:
        print(f"modalab tables: {error}")
        return 2
    text = "\n".join(sections)
    if args.check is not None:
        document = Path(args.check)
        if not document.is_file():
            print(f"modalab tables: --check {document}: no such file; give the Markdown page")
            print("whose tables should be current, e.g. --check docs/study.md.")
            return 2
        page = document.read_text()
        total, stale = check_document(text, page)
        for table in stale:
            print(f"not in {document}:\n{table}\n")
        print(f"{total - len(stale)}/{total} tables of {document} are up to date")
        claims, wrong = check_claims(page, text)
        for problem in wrong:
            print(f"{document}: {problem}")
        print(f"{claims - len(wrong)}/{claims} claims of {document} hold")
        return 1 if stale or wrong else 0
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text)
    return 0
