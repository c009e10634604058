"""Counterfactual analysis of a finished run directory (the ``modalab counterfactual`` command).

The run is rebuilt by :func:`modalab.experiments.rundir.load_run` (data, encoders and method
from its ``config.yaml``, the trained weights from its ``model.safetensors``), and the analyses
of :mod:`modalab.counterfactual` run on the chosen split. Tables (Parquet and CSV) and figures
(PNG and PDF) are written atomically into ``RUN_DIR/counterfactual/``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch
from matplotlib.figure import Figure

from modalab.counterfactual import (
    ANALYSES,
    CounterfactualReport,
    EmbeddingPredictor,
    FrozenEncoderPredictor,
    FusionModelPredictor,
    analyse,
    class_heatmap,
    encode_dataset,
    fit_fused_head,
    shapley_bars,
    swap_matrix,
)
from modalab.experiments.config import ConfigError
from modalab.experiments.io import atomic_write_bytes, atomic_write_text
from modalab.experiments.rundir import (
    LoadedRun,
    evaluated_checkpoint,
    load_run,
    unfinished_reason,
)
from modalab.models.multimodal import EmbeddingClassifier

__all__ = ["analyse_run", "build_predictor"]

OUTPUT_DIR = "counterfactual"


def build_predictor(
    loaded: LoadedRun,
    head_hidden: int = 0,
    modality_dropout: float = 0.3,
    head_epochs: int = 100,
    seed: int = 0,
) -> EmbeddingPredictor:
    """The downstream predictor of a run.

    A method that classifies from embeddings and presence (an
    :class:`~modalab.models.multimodal.EmbeddingClassifier`: ``supervised``,
    ``supervised_robust``, ``ogm_ge``, ``grad_blend``) is analysed as trained. A
    method that only trains encoders (e.g. ``method=clip``) gets a downstream head fitted on its
    frozen features of the training split (labels as observed), with modality dropout so that
    absent modalities are in-distribution (:func:`~modalab.counterfactual.fit_fused_head`).

    Args:
        loaded: The loaded run.
        head_hidden: Hidden width of the fitted head (``0``: linear probe).
        modality_dropout: Modality dropout of the fitted head.
        head_epochs: Epochs of the fitted head.
        seed: Seed of the fitted head.

    Returns:
        The predictor.
    """
    method = loaded.method
    if isinstance(method, EmbeddingClassifier):
        return FusionModelPredictor(method)
    encode = getattr(method, "representations", None)
    if encode is None:
        raise ConfigError(
            f"Method {type(method).__name__} has neither a late-fusion classifier nor "
            "`representations`; it cannot be analysed."
        )
    modalities = loaded.splits.modalities
    frozen = FrozenEncoderPredictor(encode, torch.nn.Identity(), modalities)
    train_set = loaded.splits.train
    train = encode_dataset(frozen, train_set)
    train = replace(train, label=train_set.label).select(
        torch.nonzero(train_set.label_observed).flatten()
    )
    head = fit_fused_head(
        train, hidden=head_hidden, modality_dropout=modality_dropout, epochs=head_epochs, seed=seed
    )
    return FrozenEncoderPredictor(encode, head, modalities)


def _write_figure(figure: Figure, stem: Path) -> list[Path]:
    paths = []
    for fmt in ("png", "pdf"):
        buffer = io.BytesIO()
        figure.savefig(buffer, format=fmt, dpi=150)
        atomic_write_bytes(stem.with_suffix(f".{fmt}"), buffer.getvalue())
        paths.append(stem.with_suffix(f".{fmt}"))
    return paths


def write_report(
    report: CounterfactualReport, out_dir: Path, class_names: Sequence[str] | None = None
) -> list[Path]:
    """Write the table (Parquet + CSV), the settings (JSON) and the figures, atomically.

    ``class_names`` (the dataset's, where it has them) label the per-class figures.
    """
    table = report.table
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    atomic_write_bytes(out_dir / "counterfactual.parquet", buffer.getvalue())
    atomic_write_text(out_dir / "counterfactual.csv", table.to_csv(index=False))
    written = [out_dir / "counterfactual.parquet", out_dir / "counterfactual.csv"]
    analyses = set(table["analysis"])
    if "shapley" in analyses:
        written += _write_figure(shapley_bars(table), out_dir / "shapley_bars")
        written += _write_figure(
            class_heatmap(table, class_names=class_names), out_dir / "shapley_per_class"
        )
    if "ablation" in analyses:
        written += _write_figure(
            class_heatmap(table, "ablation", "ablation", class_names=class_names),
            out_dir / "ablation_per_class",
        )
    if "swap" in analyses:
        for modality in sorted(set(table.loc[table["analysis"] == "swap", "modality"])):
            written += _write_figure(
                swap_matrix(table, modality, class_names=class_names), out_dir / f"swap_{modality}"
            )
    atomic_write_text(out_dir / "settings.json", json.dumps(report.settings, indent=2))
    written.append(out_dir / "settings.json")
    return written


def analyse_run(
    run_dir: str | Path,
    analyses: Sequence[str] = ("interventions", "ablation", "perceptual", "shapley", "swap"),
    split: str = "test",
    metric: str = "accuracy",
    seed: int = 0,
    max_samples: int = 0,
    debias_modality: str | None = None,
    head_hidden: int = 0,
    batch_size: int = 512,
) -> tuple[CounterfactualReport, list[Path]]:
    """Load a run, analyse one of its splits and write tables and figures into the run.

    Args:
        run_dir: A directory written by ``modalab run``.
        analyses: Any of :data:`~modalab.counterfactual.ANALYSES`.
        split: ``train``, ``val`` or ``test``.
        metric: ``accuracy`` or ``log_prob`` (value function of Shapley values and ablation).
        seed: Seed of the interventions (and of the fitted head of encoder-only methods).
        max_samples: Analyse only the first ``max_samples`` samples of the split (0: all).
        debias_modality: Dominant modality for the ``debias`` analysis.
        head_hidden: Hidden width of the head fitted for encoder-only methods.
        batch_size: Batch size of the encoding pass.

    Returns:
        The report and the paths written under ``RUN_DIR/counterfactual/``.
    """
    if split not in ("train", "val", "test"):
        raise ConfigError(f"split={split!r} is unknown; valid: train, val, test.")
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ConfigError(f"Unknown analyses {unknown}; valid: {list(ANALYSES)}.")
    # An unfinished run (--allow-unfinished) is analysed from its last checkpoint.
    unfinished = bool(unfinished_reason(run_dir))
    loaded = load_run(run_dir, checkpoint=evaluated_checkpoint(run_dir) if unfinished else "")
    predictor = build_predictor(loaded, head_hidden=head_hidden, seed=seed)
    dataset = getattr(loaded.splits, split)
    if 0 < max_samples < len(dataset):
        dataset = dataset.subset(torch.arange(max_samples))
    with torch.no_grad():
        encoded = encode_dataset(predictor, dataset, batch_size)
    try:
        report = analyse(
            predictor, encoded, analyses, metric=metric, seed=seed, debias_modality=debias_modality
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    report.settings.update(
        {
            "run_dir": str(loaded.run_dir),
            "split": split,
            "method": loaded.config["method"]["name"],
            "data": loaded.config["data"]["name"],
            "predictor": type(predictor).__name__,
        }
    )
    names = loaded.splits.info.class_names
    written = write_report(report, loaded.run_dir / OUTPUT_DIR, class_names=names)
    return report, written
