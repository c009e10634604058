"""The results store: one Parquet file of rows per run, written atomically.

Every run appends its rows — one per run × metric × modality × condition — as
``<store>/rows/<run_id>.parquet``. The file is written to a temporary name in the same folder
and renamed into place (``os.replace``, atomic on POSIX and Windows), so that:

* concurrent workers (processes, SLURM jobs) never write the same file and never corrupt the
  store — there is no shared file to lock;
* a crashed or killed run leaves no partial rows (only, at worst, a ``.tmp`` file that
  readers ignore), and its absence tells a resumed sweep to run it again;
* the whole store is read by listing the folder (``pandas.read_parquet`` per file, or
  ``pyarrow.dataset`` on the folder), with typed columns and no parsing.

A single shared CSV or SQLite file would need locking across processes and nodes (SQLite
locking is unreliable on the network file systems clusters use); a file per run does not.

Columns (:data:`COLUMNS`): ``run_id``, ``study``, ``config_hash`` (the resolved config without
seed and paths: runs that differ only by seed share it), ``method``, ``data``, ``scenario``
(the study's scenario label, else the composed scenario names joined by ``+``, ``none`` if
none), ``severity``,
``severity_key``, ``seed``, ``metric``, ``modality``, ``condition``, ``value``,
``git_revision``, ``versions`` (JSON), ``timestamp`` (UTC, ISO 8601).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COLUMNS", "ResultsStore"]

#: Column name → Arrow type of the store's rows.
COLUMNS: dict[str, pa.DataType] = {
    "run_id": pa.string(),
    "study": pa.string(),
    "config_hash": pa.string(),
    "method": pa.string(),
    "data": pa.string(),
    "scenario": pa.string(),
    "severity": pa.float64(),
    "severity_key": pa.string(),
    "seed": pa.int64(),
    "metric": pa.string(),
    "modality": pa.string(),
    "condition": pa.string(),
    "value": pa.float64(),
    "git_revision": pa.string(),
    "versions": pa.string(),
    "timestamp": pa.string(),
}
SCHEMA = pa.schema(list(COLUMNS.items()))


class ResultsStore:
    """A folder of per-run Parquet files of result rows.

    Args:
        root: The store folder (created on first write).

    Example:
        >>> import tempfile
        >>> store = ResultsStore(tempfile.mkdtemp())
        >>> row = {c: "" for c in COLUMNS} | {"run_id": "r1", "severity": 0.5, "seed": 0,
        ...                                   "metric": "acc", "value": 0.9}
        >>> store.append("r1", [row])
        >>> store.has("r1"), store.read()["value"].tolist()
        (True, [0.9])
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def rows_dir(self) -> Path:
        """The folder holding one Parquet file per run."""
        return self.root / "rows"

    def path(self, run_id: str) -> Path:
        """The file of one run."""
        if not run_id or "/" in run_id or run_id.startswith("."):
            raise ValueError(f"Invalid run id {run_id!r}: a non-empty file name is needed.")
        return self.rows_dir / f"{run_id}.parquet"

    def has(self, run_id: str) -> bool:
        """Whether the run's rows are in the store (a corrupt file does not count)."""
        path = self.path(run_id)
        return path.exists() and _readable(path)

    def run_ids(self) -> set[str]:
        """Ids of every run in the store whose file reads (see :meth:`corrupt_ids`)."""
        if not self.rows_dir.exists():
            return set()
        return {p.stem for p in self.rows_dir.glob("*.parquet") if _readable(p)}

    def corrupt_ids(self) -> set[str]:
        """Ids of runs whose file is not a readable Parquet file (truncated, overwritten).

        A sweep re-runs them (their file is replaced atomically); :meth:`read` refuses them.
        """
        if not self.rows_dir.exists():
            return set()
        return {p.stem for p in self.rows_dir.glob("*.parquet") if not _readable(p)}

    def append(self, run_id: str, rows: Iterable[dict[str, object]] | pd.DataFrame) -> None:
        """Write the rows of one run atomically (temporary file, then rename).

        Args:
            run_id: The run id (the file name).
            rows: Dicts or a DataFrame with exactly the columns of :data:`COLUMNS`.

        Raises:
            ValueError: If columns are missing or unknown, or a row has another ``run_id``.
        """
        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        missing = [c for c in COLUMNS if c not in frame.columns]
        extra = [c for c in frame.columns if c not in COLUMNS]
        if missing or extra:
            raise ValueError(
                f"Result rows must have exactly the store's columns; missing {missing}, "
                f"unknown {extra}."
            )
        if len(frame) and set(frame["run_id"]) != {run_id}:
            raise ValueError(f"Every row appended as run {run_id!r} must have that run_id.")
        table = pa.Table.from_pandas(frame[list(COLUMNS)], schema=SCHEMA, preserve_index=False)
        target = self.path(run_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{run_id}.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def read(self) -> pd.DataFrame:
        """Every row of the store as one DataFrame (empty, with the columns, if none)."""
        files = sorted(self.rows_dir.glob("*.parquet")) if self.rows_dir.exists() else []
        corrupt = [f for f in files if not _readable(f)]
        if corrupt:
            from modalab.experiments.errors import DataError

            listed = "\n".join(f"  - {f}" for f in corrupt[:10])
            raise DataError(
                f"The results store {self.root} holds {len(corrupt)} unreadable run file(s) "
                f"(truncated or not Parquet):\n{listed}\nDelete them and run the sweep again "
                "to recompute those runs (`modalab sweep STUDY --dry-run` marks them corrupt)."
            )
        if not files:
            return SCHEMA.empty_table().to_pandas()
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def _readable(path: Path) -> bool:
    """Whether ``path`` is a complete Parquet file (its footer reads).

    Columns are checked by the readers, which name the missing ones.
    """
    try:
        pq.ParquetFile(path).schema_arrow  # noqa: B018  (reading the footer is the check)
    except (OSError, ValueError, pa.ArrowException):
        return False
    return True
