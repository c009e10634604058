"""Every study in studies/ runs end to end at its ``--smoke`` size (what CI can afford).

Each study's smoke grid is expanded, run in this process into a temporary store and run
folder, and the store is checked against the grid: one Parquet file per run, rows labelled with
the run's method, dataset, scenario, severity and seed, and a fused linear-probe accuracy in
[0, 1] for every run. Studies that use AV-MNIST need the real data folder and are skipped with
the reason when it is absent.
"""

from __future__ import annotations

import dataclasses
import math
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
        if math.isnan(run.severity):  # a reference run: made without the scenario
            assert rows.severity.isna().all(), run.label
        else:
            assert set(rows.severity) == {run.severity}
        probe = rows[(rows.metric == "linear_probe_acc") & (rows.modality == "fused")]
        assert len(probe) >= 1 and probe.value.between(0, 1).all(), run.label


def test_counterfactual_study_analysis_at_smoke_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`modalab counterfactual --study --smoke`: efficiency, the truth derived, resumable."""
    import yaml

    from modalab.cli.main import main
    from modalab.experiments.tables import study_tables

    study = yaml.safe_load(
        (Path(__file__).parents[1] / "studies" / "counterfactual.yaml").read_text()
    )
    shapes_only = {k: v for k, v in study["datasets"].items() if k.startswith("shapes")}
    study["datasets"], study["smoke"]["datasets"] = (
        shapes_only,
        {k: study["smoke"]["datasets"][k] for k in shapes_only},
    )
    study["methods"] = {"supervised_dropout": study["methods"]["supervised_dropout"]}
    study["store"], study["output_dir"] = str(tmp_path / "store"), str(tmp_path / "runs")
    path = tmp_path / "counterfactual.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    spec = load_study(path)
    runs, store = expand_study(spec, smoke=True)
    assert run_sweep(runs, store, jobs=1, progress=lambda _: None).failed == []
    out = tmp_path / "counterfactual_analysis_smoke"  # beside the store, as `tables` reads it
    assert "no rows in" in study_tables(path, smoke=True)
    assert main(["counterfactual", "--study", str(path), "--smoke"]) == 0
    written = {f: f.stat().st_mtime_ns for f in (out / "rows").glob("*.parquet")}
    assert main(["counterfactual", "--study", str(path), "--smoke"]) == 0  # resumes: no work
    assert {f: f.stat().st_mtime_ns for f in (out / "rows").glob("*.parquet")} == written
    assert not list(out.rglob("*.tmp"))
    frame = ResultsStore(out).read()
    # The head width of the study's counterfactual table is recorded with every run; asking
    # for another over the same store is refused (one screen), nothing rewritten.
    (width,) = [t["head_hidden"] for t in study["tables"] if t["kind"] == "counterfactual"]
    recorded = frame.loc[frame.metric == "analysis_head_hidden", "value"]
    assert len(recorded) == len(runs) and set(recorded) == {float(width)}
    assert main(["counterfactual", "--study", str(path), "--smoke", "--head-hidden", "0"]) == 2
    assert f"--head-hidden {width}" in capsys.readouterr().err
    assert {f: f.stat().st_mtime_ns for f in (out / "rows").glob("*.parquet")} == written
    assert ResultsStore(out).run_ids() == {r.run_id for r in runs}
    for run_id, rows in frame.groupby("run_id"):
        value = {(m, mod): v for m, mod, v in zip(rows.metric, rows.modality, rows.value)}
        # efficiency: the Shapley values add up to v(all) - v(empty)
        total = value[("shapley", "image")] + value[("shapley", "text")]
        assert total == pytest.approx(
            value[("shapley_v_full", "fused")] - value[("shapley_v_empty", "fused")], abs=1e-9
        )
        # two modalities: the effect alone is phi_m - I / 2, and v({m}) = v(empty) + that
        interaction = value[("shapley_interaction", "image|text")]
        for m in ("image", "text"):
            solo = value[("shapley", m)] - interaction / 2
            assert value[("shapley_solo", m)] == pytest.approx(solo, abs=1e-9)
            only = value[("shapley_v_empty", "fused")] + solo
            assert value[("shapley_v_only", m)] == pytest.approx(only, abs=1e-9)
        truth = {mod: v for (m, mod), v in value.items() if m == "truth_share"}
        data = rows.data.iloc[0]
        expected = {
            "shapes_unique": {"image": 1.0, "text": 0.0},
            "shapes_redundant": {"image": 0.5, "text": 0.5},
            "shapes_synergy": {"image": 0.5, "text": 0.5},
        }[data]
        assert truth == expected, (run_id, data)
    # The study's counterfactual table reads this store: one block per dataset, truth shown.
    table = study_tables(path, smoke=True).split("\n\n")[1]
    starts = [line.split(" | ")[0][2:] for line in table.splitlines()[2:]]
    assert [s for s in starts if s] == list(shapes_only)
    assert "| image | 1.00 |" in table
