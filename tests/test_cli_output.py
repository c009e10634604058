"""What a run prints: 80-column tables, whole metric names, no meaningless rows, no chatter."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from modalab.cli.main import _results_tables, main
from modalab.evaluation.features import MetricRecord


@dataclass
class _Result:
    metrics: list[MetricRecord]


def test_tables_fit_80_columns_and_keep_metric_names() -> None:
    records = [
        MetricRecord("linear_probe_acc", 0.9, "image", "labels=1"),
        MetricRecord("linear_probe_acc", 0.8, "text", "labels=1"),
        MetricRecord("linear_probe_acc", 0.95, "audio", "labels=1"),
        MetricRecord("linear_probe_acc", 0.99, "fused", "labels=1"),
        MetricRecord("recall@1", 0.1, "image->text"),
        MetricRecord("recall@10", 0.7, "image->text"),
        MetricRecord("recall_mp@1", 0.2, "image->text"),
        MetricRecord("recall_mp@10", 0.8, "image->text"),
    ]
    for m in ("image", "text", "audio"):
        records += [MetricRecord("effective_rank", 43.0, m), MetricRecord("uniformity", -2.0, m)]
    for pair in ("image|text", "image|audio"):
        records += [MetricRecord("alignment", 0.3, pair), MetricRecord("modality_gap", 0.07, pair)]
    label = "method=clip data.n_samples=2000 trainer.max_epochs=3 scenario.missing.rate=0.5"
    console = Console(width=80, record=True, file=io.StringIO())
    for table in _results_tables([(label, _Result(records)), ("supervised", _Result(records))]):
        console.print(table)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for name in ("effective_rank", "uniformity", "alignment", "modality_gap", "R_mp@10", "fused"):
        assert name in text, name
    assert "…" not in text
    assert "0.5" in text  # the long label wraps instead of being cut


def test_supervised_run_prints_no_joint_space_rows_and_no_lightning_chatter(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    argv = [
        "run",
        "method=supervised",
        "data.n_samples=300",
        "trainer.max_epochs=1",
        "trainer.batch_size=64",
        "trainer.enable_progress_bar=false",
        "eval.l2_grid=[0.01]",
        f"output_dir={tmp_path}",
    ]
    assert main(argv) == 0
    out = capfd.readouterr()
    printed = out.out + out.err + caplog.text
    assert "linear_probe_acc" in printed and "effective_rank" in printed
    assert "cross-modal retrieval" not in printed  # no joint space: no retrieval table
    assert "alignment" not in printed and "modality_gap" not in printed
    assert "GPU available" not in printed and "Tip:" not in printed
    assert "LeafSpec" not in printed


def test_plots_name_classes_where_the_data_has_names() -> None:
    import numpy as np
    import pandas as pd

    from modalab.counterfactual.plots import class_heatmap, swap_matrix
    from modalab.experiments.plots import embedding_map

    names = ["normal", "pneumonia"]
    rows = []
    for c in ("0", "1"):
        for m in ("image", "text"):
            rows.append(
                {
                    "analysis": "shapley",
                    "statistic": "shapley",
                    "class": c,
                    "modality": m,
                    "target": "",
                    "value": 0.1,
                }
            )
        rows.append(
            {
                "analysis": "swap",
                "statistic": "follows_swapped",
                "class": c,
                "modality": "image",
                "target": "1" if c == "0" else "0",
                "value": 0.5,
            }
        )
    table = pd.DataFrame(rows)
    heat = class_heatmap(table, class_names=names)
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == names
    assert [t.get_text() for t in class_heatmap(table).axes[0].get_yticklabels()] == ["0", "1"]
    swap = swap_matrix(table, "image", class_names=names)
    assert [t.get_text() for t in swap.axes[0].get_xticklabels()] == names
    points = np.random.default_rng(0).normal(size=(4, 2))
    figure = embedding_map(points, np.array([0, 1, 0, 1]), ["a", "a", "b", "b"], "m", names)
    legend = figure.axes[0].get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == names
    from modalab.data.shapes import make_shapes

    info = make_shapes(n_samples=100, seed=0).info
    assert info.class_names == ["circle", "square", "triangle", "cross"]
