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
        # The default AV-MNIST protocol also mixes ESC-10 noise into the audio.
        required = ["mnist", "fsdd/recordings"]
        if "data.protocol=clean" not in path.read_text():
            required.append("esc10/meta")
        monkeypatch.setenv("MODALAB_DATA", str(shared_data_dir(*required)))
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


def test_counterfactual_study_analysis_at_smoke_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The analysis of the Q6 study: efficiency holds per run and the truth is derived."""
    import importlib.util
    import sys

    path = Path(__file__).parents[1] / "studies" / "counterfactual.yaml"
    spec = load_study(path)
    shapes_only = {k: v for k, v in spec.datasets.items() if k.startswith("shapes")}
    spec = dataclasses.replace(
        spec,
        datasets=shapes_only,
        methods={"supervised_dropout": spec.methods["supervised_dropout"]},
        store=str(tmp_path / "store"),
        output_dir=str(tmp_path / "runs"),
        smoke=dataclasses.replace(
            spec.smoke, datasets={k: spec.smoke.datasets[k] for k in shapes_only}
        ),
    )
    runs, store = expand_study(spec, smoke=True)
    assert run_sweep(runs, store, jobs=1, progress=lambda _: None).failed == []
    script = Path(__file__).parents[1] / "scripts" / "counterfactual_study.py"
    module_spec = importlib.util.spec_from_file_location("counterfactual_study", script)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    out = tmp_path / "analysis"
    argv = [str(script), str(path), "--store", store, "--runs", str(tmp_path / "runs_smoke")]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    module.main()
    frame = ResultsStore(out).read()
    assert ResultsStore(out).run_ids() == {r.run_id for r in runs}
    for run_id, rows in frame.groupby("run_id"):
        value = {(m, mod): v for m, mod, v in zip(rows.metric, rows.modality, rows.value)}
        # efficiency: the Shapley values add up to v(all) - v(empty)
        total = value[("shapley", "image")] + value[("shapley", "text")]
        assert total == pytest.approx(
            value[("shapley_v_full", "fused")] - value[("shapley_v_empty", "fused")], abs=1e-9
        )
        truth = {mod: v for (m, mod), v in value.items() if m == "truth_share"}
        data = rows.data.iloc[0]
        expected = {
            "shapes_unique": {"image": 1.0, "text": 0.0},
            "shapes_redundant": {"image": 0.5, "text": 0.5},
            "shapes_synergy": {"image": 0.5, "text": 0.5},
        }[data]
        assert truth == expected, (run_id, data)
    # The study's counterfactual table reads this store: one block per dataset, truth shown.
    from modalab.experiments.tables import counterfactual_table

    table = counterfactual_table(frame, list(spec.methods), list(spec.datasets))
    starts = [line.split(" | ")[0][2:] for line in table.splitlines()[2:]]
    assert [s for s in starts if s] == list(shapes_only)
    assert "| image | 1.00 |" in table
