"""Reports never pool unlike runs: two datasets and two configurations in one store."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modalab.cli.main import main
from modalab.experiments import report as report_module
from modalab.experiments.collect import RESULT_COLUMNS
from modalab.experiments.report import (
    ReportConfig,
    build_report,
    config_differences,
    separate_configs,
    summarize,
)

# (method, data, config_hash) → base value of its seeds.
CELLS = {
    ("clip", "shapes", "h-big"): 0.96,
    ("clip", "shapes", "h-small"): 0.60,  # a 2,000-sample/3-epoch run of the same method
    ("clip", "avmnist", "h-av"): 0.44,
    ("supervised", "shapes", "h-sup"): 0.90,
    ("supervised", "avmnist", "h-sup-av"): 0.70,
}


def _rows() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for (method, data, config_hash), base in CELLS.items():
        for seed in range(3):
            run_id = f"{config_hash}-s{seed}"
            common = {
                "run_id": run_id,
                "study": "",
                "config_hash": config_hash,
                "method": method,
                "data": data,
                "scenario": "none",
                "severity": math.nan,
                "severity_key": "",
                "seed": seed,
                "git_revision": "",
                "versions": "{}",
                "timestamp": "2026-01-01T00:00:00+00:00",
            }
            for modality, offset in (("image", 0.0), ("audio", -0.1)):
                value = base + offset + rng.normal(0, 0.01)
                rows.append(
                    {
                        **common,
                        "metric": "linear_probe_acc",
                        "modality": modality,
                        "condition": "labels=1",
                        "value": value,
                    }
                )
            for direction in ("image->audio", "audio->image"):
                rows.append(
                    {
                        **common,
                        "metric": "recall@1",
                        "modality": direction,
                        "condition": "",
                        "value": base / 4 + rng.normal(0, 0.01),
                    }
                )
    return pd.DataFrame(rows)[list(RESULT_COLUMNS)]


def _store(frame: pd.DataFrame, store: Path) -> Path:
    (store / "rows").mkdir(parents=True)
    for run_id, rows in frame.groupby("run_id"):
        rows.to_parquet(store / "rows" / f"{run_id}.parquet", index=False)
    return store


def _mean(frame: pd.DataFrame, **where: Any) -> float:
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return float(frame[mask]["value"].mean())


def test_summary_keeps_configs_apart() -> None:
    rows = _rows()
    separated, warnings = separate_configs(rows)
    assert len(warnings) == 1 and "`clip`" in warnings[0] and "2 configurations" in warnings[0]
    summary = summarize(separated, baseline="supervised")
    probe = summary[(summary.metric == "linear_probe_acc") & (summary.modality == "image")]
    got = {(r.method, r.data): r.mean for r in probe.itertuples()}
    for (method, data, config_hash), _ in CELLS.items():
        split = method == "clip" and data == "shapes"
        label = f"{method} [config {config_hash}]" if split else method
        expected = _mean(rows, config_hash=config_hash, modality="image", metric="linear_probe_acc")
        assert got[(label, data)] == pytest.approx(expected, abs=1e-12)
    assert all(n == 3 for n in summary["n"])  # never 6 seeds pooled from two configs


def test_separate_configs_names_the_differing_keys(tmp_path: Path) -> None:
    rows = _rows()
    run_dirs = {}
    for run_id, config_hash in rows.drop_duplicates("run_id")[["run_id", "config_hash"]].values:
        run_dir = tmp_path / run_id
        run_dir.mkdir()
        n = 2000 if config_hash == "h-small" else 6000
        epochs = 3 if config_hash == "h-small" else 15
        (run_dir / "config.yaml").write_text(
            f"seed: 0\nrun_name: {run_id}\ndata:\n  n_samples: {n}\n"
            f"trainer:\n  max_epochs: {epochs}\n"
        )
        run_dirs[run_id] = run_dir
    separated, warnings = separate_configs(rows, run_dirs)
    labels = set(separated.loc[separated.data == "shapes", "method"])
    assert "clip [data.n_samples=2000, trainer.max_epochs=3]" in labels
    assert "clip [data.n_samples=6000, trainer.max_epochs=15]" in labels
    assert "data.n_samples, trainer.max_epochs" in warnings[0]


def test_report_draws_one_figure_per_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows()
    store = _store(rows, tmp_path / "store")
    bars: list[tuple[str, pd.DataFrame]] = []
    matrices: list[pd.DataFrame] = []
    real_bars, real_matrices = report_module.grouped_bars, report_module.direction_matrices

    def spy_bars(summary: pd.DataFrame, title: str, ylabel: str) -> Any:
        bars.append((title, summary.copy()))
        return real_bars(summary, title, ylabel)

    def spy_matrices(summary: pd.DataFrame, label: str) -> Any:
        matrices.append(summary.copy())
        return real_matrices(summary, label)

    monkeypatch.setattr(report_module, "grouped_bars", spy_bars)
    monkeypatch.setattr(report_module, "direction_matrices", spy_matrices)
    files = build_report(store, tmp_path / "out", ReportConfig(formats=("png",), embedding=False))
    assert sorted(title.split(":")[0] for title, _ in bars) == ["avmnist", "shapes"]
    for title, frame in bars:
        data = title.split(":")[0]
        for r in frame.itertuples():
            method = r.method.split(" [")[0]
            hashes = [h for (m, d, h) in CELLS if m == method and d == data]
            if " [config " in r.method:
                hashes = [r.method.split(" [config ")[1].rstrip("]")]
            assert len(hashes) == 1, (data, r.method)  # one config, one dataset per bar
            expected = _mean(
                rows, config_hash=hashes[0], modality=r.group, metric="linear_probe_acc"
            )
            assert r.mean == pytest.approx(expected, abs=1e-12)
    assert len(matrices) == 2 and all(m["data"].nunique() == 1 for m in matrices)
    names = {Path(f).name for f in files.figures}
    assert {"matrix_recall-1_shapes.png", "matrix_recall-1_avmnist.png"} <= names
    assert any("differ in more than the seed" in note for note in files.notes)


def test_compare_warns_when_runs_differ_in_more_than_the_seed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _rows()
    a = _store(rows[rows.config_hash == "h-big"], tmp_path / "a")
    b = _store(rows[rows.config_hash == "h-small"], tmp_path / "b")
    c = _store(rows[rows.config_hash == "h-big"].assign(seed=lambda f: f.seed + 3), tmp_path / "c")
    assert config_differences([a, c]) == []  # same config, other seeds: no warning
    warnings = config_differences([a, b])
    assert len(warnings) == 1 and "clip on shapes" in warnings[0] and "h-small" in warnings[0]
    assert main(["compare", str(a), str(b)]) == 0
    assert "differ in more than the seed" in " ".join(capsys.readouterr().out.split())
    assert json.dumps(warnings)  # plain strings


def test_tables_order_severities_numerically_and_mark_missing_cells_once() -> None:
    from modalab.experiments.report import MISSING, wide_table

    rows = []
    for method in ("clip", "supervised"):
        for severity in (0.5, 0.0, 1.0):  # first seen in this order
            if method == "supervised" and severity == 1.0:
                continue  # a missing cell
            for seed in (0, 1):
                rows.append(
                    {
                        "data": "shapes",
                        "scenario": "missing",
                        "severity": severity,
                        "metric": "linear_probe_acc",
                        "modality": "fused",
                        "condition": "",
                        "method": method,
                        "seed": seed,
                        "value": 0.9 - severity / 4 + seed / 100,
                    }
                )
    rows.append(
        {
            "data": "shapes",
            "scenario": "missing",
            "severity": 0.0,
            "metric": "uniformity",
            "modality": "fused",
            "condition": "",
            "method": "clip",
            "seed": 0,
            "value": float("nan"),
        }
    )
    table = wide_table(summarize(pd.DataFrame(rows), baseline="supervised"))
    probe = table[table["metric"] == "linear_probe_acc"]
    assert list(probe["severity"]) == ["0", "0.5", "1"]
    assert probe.iloc[2]["supervised"] == MISSING
    undefined = table[table["metric"] == "uniformity"].iloc[0]
    assert undefined["clip"] == MISSING and undefined["supervised"] == MISSING
    assert not any("nan" in str(v) for v in table.to_numpy().ravel())
