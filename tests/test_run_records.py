"""A run records the data folder it read; unfinished runs are refused or flagged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modalab.cli.main import main
from modalab.experiments.rundir import (
    DATA_DIR_FILE,
    record_data_dir,
    with_recorded_data_dir,
)

TINY = [
    "data.n_samples=300",
    "trainer.max_epochs=1",
    "trainer.batch_size=64",
    "trainer.enable_progress_bar=false",
    "eval.l2_grid=[0.01]",
]


def test_recorded_data_dir_replaces_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("MODALAB_DATA", str(data))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert record_data_dir(run_dir, {"name": "shapes"}) is None  # embedded: nothing to record
    assert record_data_dir(run_dir, {"name": "avmnist", "data_dir": ""}) == data.resolve()
    assert json.loads((run_dir / DATA_DIR_FILE).read_text()) == {"data_dir": str(data.resolve())}
    monkeypatch.delenv("MODALAB_DATA")
    cfg = {"name": "avmnist", "data_dir": ""}
    assert with_recorded_data_dir(run_dir, cfg)["data_dir"] == str(data.resolve())
    assert with_recorded_data_dir(run_dir, {**cfg, "data_dir": "/x"})["data_dir"] == "/x"
    shutil.rmtree(data)  # a recorded folder that is gone is not used
    assert with_recorded_data_dir(run_dir, cfg)["data_dir"] == ""


def test_unfinished_run_refused_by_counterfactual_and_noted_by_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    assert main(["run", "--quiet", *TINY, f"output_dir={runs}", "run_name=done"]) == 0
    unfinished = runs / "cut"
    shutil.copytree(runs / "done", unfinished)
    (unfinished / "metrics.json").unlink()
    (unfinished / "failure.json").write_text(json.dumps({"error": "interrupted by SIGTERM"}))
    capsys.readouterr()
    assert main(["counterfactual", str(unfinished)]) == 2
    err = capsys.readouterr().err
    assert "unfinished run" in err and "SIGTERM" in err and "--allow-unfinished" in err
    assert "Traceback" not in err
    assert main(["report", str(unfinished), "--no-embedding", "--quiet"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert "unfinished" in out
    assert main(["report", str(runs), "--no-embedding", "--quiet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Unfinished runs skipped" in out and "cut" in out
