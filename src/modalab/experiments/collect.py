"""Collect results into one table: from a results store or from run directories.

Reports and comparisons work on one pandas DataFrame with the columns of the results store
(:data:`RESULT_COLUMNS`: one row per run × metric × modality × condition). It comes from

- a results store folder: ``<store>/rows/<run_id>.parquet``, one file per run; or
- run directories written by ``modalab run`` (``config.yaml`` + ``metrics.json`` +
  ``metrics.csv``), turned into the same rows by :func:`rows_from_run_dir`.

A run directory without ``metrics.json`` is an unfinished run: it is listed, never silently
read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from modalab.evaluation.features import MetricRecord
from modalab.experiments.io import load_yaml
from modalab.experiments.rundir import CHECKPOINTS_DIR, CONFIG_FILE, METRICS_FILE
from modalab.experiments.runner import result_rows
from modalab.experiments.store import COLUMNS, ResultsStore

__all__ = [
    "RESULT_COLUMNS",
    "CollectedResults",
    "ResultsNotFoundError",
    "collect_results",
    "find_run_dirs",
    "read_store",
    "rows_from_run_dir",
]

#: Columns of a results table: the results store's (:data:`~modalab.experiments.store.COLUMNS`).
RESULT_COLUMNS: tuple[str, ...] = tuple(COLUMNS)


class ResultsNotFoundError(FileNotFoundError):
    """A path holds neither a results store nor finished run directories."""


@dataclass
class CollectedResults:
    """The results found under a path.

    Attributes:
        table: One row per run × metric × modality × condition (:data:`RESULT_COLUMNS`).
        run_dirs: Run id → run directory, for the runs whose directory was found (their
            training curves, configs and weights).
        unfinished: Run directories without ``metrics.json`` (skipped).
        source: The path the results came from.
    """

    table: pd.DataFrame
    run_dirs: dict[str, Path] = field(default_factory=dict)
    unfinished: list[Path] = field(default_factory=list)
    source: Path = Path(".")


def rows_from_run_dir(run_dir: str | Path) -> pd.DataFrame:
    """The results rows of one finished run directory, in the results store schema.

    The rows a results store would hold for the run
    (:func:`~modalab.experiments.runner.result_rows`: config hash, labels, severity, the
    versions and git revision recorded in ``metrics.json``), except that ``run_id`` is the
    directory name; ``timestamp`` is the time ``metrics.json`` was written.

    Args:
        run_dir: A directory written by ``modalab run``.

    Returns:
        A DataFrame with the columns :data:`RESULT_COLUMNS`.

    Raises:
        ResultsNotFoundError: If the directory holds no finished run.
    """
    run_dir = Path(run_dir)
    metrics_json = run_dir / METRICS_FILE
    if not metrics_json.exists() or not (run_dir / CONFIG_FILE).exists():
        raise ResultsNotFoundError(
            f"{run_dir} is not a finished run directory (it needs config.yaml and metrics.json, "
            "written by `modalab run`)."
        )
    config = load_yaml(run_dir / CONFIG_FILE)
    payload = json.loads(metrics_json.read_text())
    stamp = datetime.fromtimestamp(metrics_json.stat().st_mtime, tz=timezone.utc)
    rows = result_rows(
        config,
        [MetricRecord(**r) for r in payload["metrics"]],
        versions=payload.get("versions", {}),
        timestamp=stamp.isoformat(timespec="seconds"),
    )
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    table["run_id"] = run_dir.name  # the directory name: what reports and `compare` show
    return table


def read_store(store: str | Path) -> pd.DataFrame:
    """Read every ``<store>/rows/*.parquet`` file of a results store into one DataFrame.

    Raises:
        ResultsNotFoundError: If the store holds no row files.
        ValueError: If a file lacks columns of :data:`RESULT_COLUMNS`.
    """
    results = ResultsStore(store)
    if not results.run_ids():
        raise ResultsNotFoundError(f"{results.rows_dir} holds no *.parquet files.")
    frame = results.read()
    missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{results.rows_dir} lacks the results columns {missing}; is it a modalab results "
            "store?"
        )
    return _normalise(frame)


def find_run_dirs(path: str | Path) -> tuple[list[Path], list[Path]]:
    """Finished and unfinished run directories at or below ``path``.

    A run directory is one with a ``config.yaml``; it is finished when it also has
    ``metrics.json``.
    """
    root = Path(path)
    candidates = sorted({p.parent for p in root.glob(f"**/{CONFIG_FILE}")})
    candidates = [p for p in candidates if CHECKPOINTS_DIR not in p.parts]
    finished = [p for p in candidates if (p / METRICS_FILE).exists()]
    unfinished = [p for p in candidates if not (p / METRICS_FILE).exists()]
    return finished, unfinished


def _normalise(table: pd.DataFrame) -> pd.DataFrame:
    table = table.loc[:, list(RESULT_COLUMNS)].copy()
    for column in ("scenario", "modality", "condition", "git_revision", "method", "data"):
        table[column] = table[column].fillna("").astype(str)
    # no severity: NaN (a store may write None or an empty string)
    severity = table["severity"].map(lambda v: float("nan") if v is None or v == "" else v)
    table["severity"] = pd.to_numeric(severity, errors="raise").astype(float)
    table["seed"] = table["seed"].astype(int)
    table["value"] = table["value"].astype(float)
    return table.reset_index(drop=True)


def collect_results(path: str | Path) -> CollectedResults:
    """All results under ``path``: a results store, a sweep folder or one run directory.

    When ``path`` holds a store (``rows/*.parquet``), its rows are the table; run directories
    found below ``path`` still provide training curves and weights. Otherwise the table is
    built from the finished run directories at or below ``path``.

    Args:
        path: A store folder, a folder of run directories, or a run directory.

    Returns:
        The table, the run directories by run id and the unfinished runs.

    Raises:
        ResultsNotFoundError: If ``path`` holds neither.

    Example:
        >>> import tempfile
        >>> collect_results(tempfile.mkdtemp())  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ...
        modalab.experiments.collect.ResultsNotFoundError: ...
    """
    root = Path(path)
    if not root.exists():
        raise ResultsNotFoundError(f"{root} does not exist.")
    finished, unfinished = find_run_dirs(root)
    run_dirs = {p.name: p for p in finished}
    if list((root / "rows").glob("*.parquet")):
        table = read_store(root)
    elif finished:
        table = _normalise(pd.concat([rows_from_run_dir(p) for p in finished], ignore_index=True))
    else:
        extra = f" ({len(unfinished)} unfinished runs without metrics.json)" if unfinished else ""
        raise ResultsNotFoundError(
            f"{root} holds no results: expected a results store (rows/*.parquet) or run "
            f"directories written by `modalab run` (config.yaml + metrics.json){extra}."
        )
    return CollectedResults(table=table, run_dirs=run_dirs, unfinished=unfinished, source=root)
