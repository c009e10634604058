"""Every study in studies/ runs end to end at its ``--smoke`` size (what CI can afford).

Each study's smoke grid is expanded, run in this process into a temporary store and run
folder, and the store is checked against the grid: one Parquet file per run, rows labelled with
the run's method, dataset, scenario, severity and seed, and a fused linear-probe accuracy in
[0, 1] for every run. Studies that use AV-MNIST need the real data folder and are skipped with
the reason when it is absent.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from _real_data import shared_data_dir
from modalab.experiments.store import ResultsStore
from modalab.experiments.sweep import expand_study, load_study, run_sweep

pytestmark = pytest.mark.slow

STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_smoke_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = load_study(path)
    if "avmnist" in path.read_text():
        monkeypatch.setenv("MODALAB_DATA", str(shared_data_dir("mnist", "fsdd/recordings")))
    spec = dataclasses.replace(
        spec, store=str(tmp_path / "store"), output_dir=str(tmp_path / "runs")
    )
    runs, store = expand_study(spec, smoke=True)
    assert store == str(tmp_path / "store") + "_smoke"
    lines: list[str] = []
    summary = run_sweep(runs, store, jobs=1, progress=lines.append)
    assert summary.failed == [], "\n".join(lines)
    frame = ResultsStore(store).read()
    assert ResultsStore(store).run_ids() == {r.run_id for r in runs}
    for run in runs:
        rows = frame[frame.run_id == run.run_id]
        expected_data = run.dataset or rows.data.iloc[0]
        assert set(rows.method) == {run.method}
        assert set(rows.data) == {expected_data}
        assert set(rows.scenario) == {run.scenario}
        assert set(rows.seed) == {run.seed}
        assert set(rows.severity) == {run.severity}
        probe = rows[(rows.metric == "linear_probe_acc") & (rows.modality == "fused")]
        assert len(probe) >= 1 and probe.value.between(0, 1).all(), run.label
