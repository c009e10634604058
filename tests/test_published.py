"""The AV-MNIST baseline table from a results store with planted rows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modalab.experiments.published import PUBLISHED, SETUP_DIFFERENCES, baseline_table, main
from modalab.experiments.store import COLUMNS, ResultsStore


def _store(
    root: Path, values: dict[tuple[str, str], list[float]], metric: str = "linear_probe_acc"
) -> None:
    store = ResultsStore(root)
    for (method, modality), seeds in values.items():
        for seed, value in enumerate(seeds):
            run = f"{method}-{modality}-{seed}-{metric}"
            row = {c: "" for c in COLUMNS} | {
                "run_id": run,
                "study": "avmnist_baselines",
                "method": method,
                "severity": 0.25,
                "seed": seed,
                "metric": metric,
                "modality": modality,
                "value": value,
            }
            store.append(run, [row])


def test_table_has_mean_std_over_seeds_and_published_sources(tmp_path: Path) -> None:
    planted = {
        ("late_fusion", "fused"): [0.70, 0.74, 0.72],
        ("late_fusion", "image"): [0.60, 0.62, 0.64],
        ("clip", "fused"): [0.5, 0.6, 0.7],
    }
    _store(tmp_path, planted)
    heads = [0.80, 0.84, 0.83]
    _store(tmp_path, {("late_fusion", "fused"): heads}, metric="head_acc")
    table = baseline_table(tmp_path)
    lines = table.splitlines()
    late = next(line for line in lines if line.startswith("| late_fusion |"))
    mean, std = (
        np.mean(planted[("late_fusion", "fused")]),
        np.std(planted[("late_fusion", "fused")], ddof=1),
    )
    assert f"{mean:.3f} ± {std:.3f}" in late
    assert "| 3 |" in late and "not found" in late
    # The head column (what MultiBench reports), before the seeds; CLIP has no head.
    assert f"| {np.mean(heads):.3f} ± {np.std(heads, ddof=1):.3f} | 3 |" in late
    clip = next(line for line in lines if line.startswith("| clip |"))
    assert "| — | 3 |" in clip
    assert PUBLISHED["late_fusion"].source in late
    # Methods in the study's order; setup differences listed one per line.
    assert table.index("| late_fusion |") < table.index("| clip |")
    assert all(line in table for line in SETUP_DIFFERENCES)
    # The one number found is printed with its source; the others stay "not found".
    audio = PUBLISHED["audio_only"]
    assert audio.value == pytest.approx(0.4183) and "avmnist_pretraining_robust.py" in audio.source
    assert sum(p.value is not None for p in PUBLISHED.values()) == 1


def test_empty_store_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "none")]) == 1
    assert "holds no linear_probe_acc rows" in capsys.readouterr().err


def test_epochs_column_reads_each_runs_training_record(tmp_path: Path) -> None:
    """The evaluated/trained epochs and early stops come from the runs' metrics.json."""
    _store(tmp_path / "store", {("late_fusion", "fused"): [0.7, 0.8], ("clip", "fused"): [0.5]})
    trainings = {  # evaluated_epoch counted from 0, as training_summary records it
        "late_fusion-fused-0-linear_probe_acc": (1, 6, True),
        "late_fusion-fused-1-linear_probe_acc": (18, 20, False),
        "elsewhere-run": (3, 3, True),  # a run directory the store does not hold: ignored
    }
    for run, (evaluated, trained, early) in trainings.items():
        run_dir = tmp_path / "runs" / run
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text("seed: 0\n")
        record = {"evaluated_epoch": evaluated, "epochs_trained": trained, "stopped_early": early}
        (run_dir / "metrics.json").write_text(json.dumps({"training": record}))
    (tmp_path / "runs" / "clip-fused-0-linear_probe_acc").mkdir()  # unfinished: no files
    table = baseline_table(tmp_path / "store", runs=tmp_path / "runs")
    late = next(line for line in table.splitlines() if line.startswith("| late_fusion |"))
    clip = next(line for line in table.splitlines() if line.startswith("| clip |"))
    assert "| 2 | 2–19 / 6–20, early 1/2 |" in late  # seeds, then evaluated (from 1) / trained
    assert "| 1 | — |" in clip
    assert "epochs: evaluated / trained" in table.splitlines()[0]
    # Without the run directories the column is absent.
    assert "epochs" not in baseline_table(tmp_path / "store").splitlines()[0]
