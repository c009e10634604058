"""The results store: atomic per-run Parquet files, concurrent writers, schema checks."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from modalab.experiments.store import COLUMNS, ResultsStore


def _rows(run_id: str, n: int = 3) -> list[dict[str, object]]:
    base = {c: "" for c in COLUMNS}
    return [
        {**base, "run_id": run_id, "severity": 0.5, "seed": 1, "metric": f"m{i}", "value": i / 10}
        for i in range(n)
    ]


def test_roundtrip_and_types(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    store.append("a", _rows("a"))
    store.append("b", _rows("b", 2))
    frame = store.read()
    assert len(frame) == 5 and store.run_ids() == {"a", "b"}
    assert list(frame.columns) == list(COLUMNS)
    assert frame["seed"].dtype.kind == "i" and frame["value"].dtype.kind == "f"
    assert sorted(frame[frame.run_id == "a"]["value"]) == [0.0, 0.1, 0.2]


def test_empty_store_reads_as_an_empty_table(tmp_path: Path) -> None:
    frame = ResultsStore(tmp_path / "none").read()
    assert frame.empty and list(frame.columns) == list(COLUMNS)


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = ResultsStore(tmp_path)

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.append("a", _rows("a"))
    assert not store.has("a")
    assert list((tmp_path / "rows").iterdir()) == []


def test_bad_rows_are_rejected(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    rows = _rows("a")
    del rows[0]["metric"]
    with pytest.raises(ValueError, match="missing"):
        store.append("a", [{k: v for k, v in r.items() if k != "metric"} for r in rows])
    with pytest.raises(ValueError, match="run_id"):
        store.append("b", _rows("a"))
    with pytest.raises(ValueError, match="Invalid run id"):
        store.append("../x", _rows("../x"))


def _writer(root: str, worker: int) -> None:
    store = ResultsStore(root)
    for i in range(10):
        run_id = f"w{worker}-{i}"
        store.append(run_id, _rows(run_id, 50))


def test_concurrent_processes_never_corrupt_the_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
        assert p.exitcode == 0
    frame = ResultsStore(tmp_path).read()
    assert len(frame) == 4 * 10 * 50
    assert frame.groupby("run_id").size().eq(50).all()
    assert not list((tmp_path / "rows").glob("*.tmp"))
