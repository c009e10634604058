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

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from modalab.experiments.io import load_yaml

__all__ = [
    "RESULT_COLUMNS",
    "CollectedResults",
    "ResultsNotFoundError",
    "collect_results",
    "config_hash",
    "find_run_dirs",
    "read_store",
    "rows_from_run_dir",
]

#: Columns of a results table (the results store schema).
RESULT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "config_hash",
    "method",
    "data",
    "scenario",
    "severity",
    "seed",
    "metric",
    "modality",
    "condition",
    "value",
    "git_revision",
    "versions",
    "timestamp",
)

#: Config keys that name a run rather than define it (left out of the config hash).
_RUN_KEYS = ("seed", "output_dir", "run_name", "resume", "loggers", "mlflow")


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


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a resolved config, without the keys that only name the run.

    Two seeds of the same configuration share the hash.

    Example:
        >>> a = config_hash({"method": {"name": "clip"}, "seed": 0, "run_name": "x"})
        >>> b = config_hash({"method": {"name": "clip"}, "seed": 1, "run_name": "y"})
        >>> a == b, len(a)
        (True, 12)
    """
    defining = {k: v for k, v in config.items() if k not in _RUN_KEYS}
    text = json.dumps(defining, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _scenario(config: dict[str, Any]) -> tuple[str, float]:
    """Scenario name and severity from a config's ``scenario`` group, if it has one."""
    scenario = config.get("scenario")
    if not isinstance(scenario, dict):
        return "", float("nan")
    name = str(scenario.get("name", ""))
    severity = scenario.get("severity", float("nan"))
    return ("" if name == "none" else name), float("nan" if severity is None else severity)


def rows_from_run_dir(run_dir: str | Path) -> pd.DataFrame:
    """The results rows of one finished run directory, in the results store schema.

    ``run_id`` is the directory name; ``scenario``/``severity`` come from the config's
    ``scenario`` group when it has one (empty / NaN otherwise); ``git_revision`` is empty (run
    directories do not record it); ``timestamp`` is the time ``metrics.json`` was written.

    Args:
        run_dir: A directory written by ``modalab run``.

    Returns:
        A DataFrame with the columns :data:`RESULT_COLUMNS`.

    Raises:
        ResultsNotFoundError: If the directory holds no finished run.
    """
    run_dir = Path(run_dir)
    metrics_json = run_dir / "metrics.json"
    if not metrics_json.exists() or not (run_dir / "config.yaml").exists():
        raise ResultsNotFoundError(
            f"{run_dir} is not a finished run directory (it needs config.yaml and metrics.json, "
            "written by `modalab run`)."
        )
    config = load_yaml(run_dir / "config.yaml")
    payload = json.loads(metrics_json.read_text())
    scenario, severity = _scenario(config)
    stamp = datetime.fromtimestamp(metrics_json.stat().st_mtime, tz=timezone.utc)
    records = payload["metrics"]
    table = pd.DataFrame(
        {
            "run_id": run_dir.name,
            "config_hash": config_hash(config),
            "method": str(payload.get("method", config["method"]["name"])),
            "data": str(payload.get("data", config["data"]["name"])),
            "scenario": scenario,
            "severity": severity,
            "seed": int(payload.get("seed", config["seed"])),
            "metric": [str(r["metric"]) for r in records],
            "modality": [str(r.get("modality", "")) for r in records],
            "condition": [str(r.get("condition", "")) for r in records],
            "value": [float(r["value"]) for r in records],
            "git_revision": "",
            "versions": json.dumps(payload.get("versions", {}), sort_keys=True),
            "timestamp": stamp.isoformat(timespec="seconds"),
        },
        columns=list(RESULT_COLUMNS),
    )
    return table


def read_store(store: str | Path) -> pd.DataFrame:
    """Read every ``<store>/rows/*.parquet`` file of a results store into one DataFrame.

    Raises:
        ResultsNotFoundError: If the store holds no row files.
        ValueError: If a file lacks columns of :data:`RESULT_COLUMNS`.
    """
    files = sorted((Path(store) / "rows").glob("*.parquet"))
    if not files:
        raise ResultsNotFoundError(f"{Path(store) / 'rows'} holds no *.parquet files.")
    frames = []
    for path in files:
        frame = pd.read_parquet(path)
        missing = [c for c in RESULT_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(
                f"{path} lacks the results columns {missing}; is it a modalab results store?"
            )
        frames.append(frame)
    return _normalise(pd.concat(frames, ignore_index=True))


def find_run_dirs(path: str | Path) -> tuple[list[Path], list[Path]]:
    """Finished and unfinished run directories at or below ``path``.

    A run directory is one with a ``config.yaml``; it is finished when it also has
    ``metrics.json``.
    """
    root = Path(path)
    candidates = sorted({p.parent for p in root.glob("**/config.yaml")})
    candidates = [p for p in candidates if "checkpoints" not in p.parts]
    finished = [p for p in candidates if (p / "metrics.json").exists()]
    unfinished = [p for p in candidates if not (p / "metrics.json").exists()]
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
