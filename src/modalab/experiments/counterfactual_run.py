"""Counterfactual analysis of finished runs (the ``modalab counterfactual`` command).

A run is rebuilt by :func:`modalab.experiments.rundir.load_run` (data, encoders and method
from its ``config.yaml``, the trained weights from its ``model.safetensors``), and the analyses
of :mod:`modalab.counterfactual` run on the chosen split. Tables (Parquet and CSV) and figures
(PNG and PDF) are written atomically into ``RUN_DIR/counterfactual/``.

:func:`analyse_study` analyses every run of a study's store and writes the pooled statistics,
with the known truth beside them, to a results store (question 6 of ``docs/study.md``).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from modalab.counterfactual import (
    ANALYSES,
    AnalysisSettings,
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
from modalab.experiments.io import atomic_write_bytes, atomic_write_text, load_yaml
from modalab.experiments.rundir import (
    CONFIG_FILE,
    LoadedRun,
    evaluated_checkpoint,
    load_run,
    unfinished_reason,
)
from modalab.experiments.store import ResultsStore
from modalab.experiments.sweep import load_study
from modalab.experiments.tables import load_tables
from modalab.models.multimodal import EmbeddingClassifier

__all__ = ["analyse_run", "analyse_study", "build_predictor", "pooled_rows", "truth"]

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
    missing_rates: Sequence[float] = AnalysisSettings.missing_rates,
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
        missing_rates: Drop rates of the ``missing_rate`` analysis.

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
            predictor,
            encoded,
            analyses,
            metric=metric,
            seed=seed,
            debias_modality=debias_modality,
            missing_rates=missing_rates,
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


#: The analyses of :func:`analyse_study`.
STUDY_ANALYSES = ("ablation", "perceptual", "shapley", "views_present")


def truth(
    config: Mapping[str, Any], modalities: Sequence[str], intuition: Mapping[str, str]
) -> dict[str, tuple[float, float]]:
    """Expected ``{modality: (share, dominant)}`` of one run, from its config.

    For ``shapes`` the modalities that carry every label factor share the label equally and
    one that carries none gets 0; when no modality carries every factor (synergy) each alone
    is uninformative and Shapley values split the interaction equally among the modalities
    that carry a label factor (dominant: NaN). Other data: ``intuition`` names the dominant
    modality per dataset (share NaN); a dataset it does not name has no truth.
    """
    data = config["data"]
    if data["name"] != "shapes":
        top = intuition.get(data["name"])
        return {} if top is None else {m: (float("nan"), float(m == top)) for m in modalities}
    factors = set(data["label_factors"])
    carries = {m: set(data["carries"].get(m, [])) for m in modalities}
    alone = [m for m in modalities if factors <= carries[m]]
    if alone:
        return {m: (1.0 / len(alone) if m in alone else 0.0, float(m in alone)) for m in modalities}
    involved = [m for m in modalities if factors & carries[m]]
    return {m: (1.0 / len(involved) if m in involved else 0.0, float("nan")) for m in modalities}


def pooled_rows(table: pd.DataFrame) -> list[tuple[str, str, float]]:
    """``(metric, modality, value)`` of the all-class statistics of an analysis table.

    Shapley statistics are named ``shapley_*`` (``v_full``/``v_empty`` on modality ``fused``,
    the interaction on ``a|b``); ``views_present`` gives, for each modality alone,
    ``shapley_v_only`` (``v({m})``: the others missing) and ``shapley_solo`` (``v({m}) - v(∅)``;
    for two modalities ``phi_m - I / 2``).
    """
    rows = table[table["class"] == "all"]
    names = {"share": "shapley_share", "v_full": "shapley_v_full", "v_empty": "shapley_v_empty"}
    empty = rows.loc[rows.statistic == "v_empty", "value"]
    out: list[tuple[str, str, float]] = []
    for r in rows.itertuples(index=False):
        value, modality = float(r.value), str(r.modality)
        if r.analysis == "interaction":
            out.append(("shapley_interaction", f"{modality}|{r.target}", value))
        elif r.analysis == "views_present":
            if r.statistic == "subset" and "+" not in modality:
                out.append(("shapley_v_only", modality, value))
                out.append(("shapley_solo", modality, value - float(empty.iloc[0])))
        else:
            modality = "fused" if modality in ("full", "empty") else modality
            out.append((names.get(str(r.statistic), str(r.statistic)), modality, value))
    return out


def analyse_study(
    study: str | Path,
    smoke: bool = False,
    metric: str = "accuracy",
    max_samples: int = 0,
    intuition: Mapping[str, str] | None = None,
    head_hidden: int | None = None,
) -> Path:
    """Analyse every run of a study's store; pooled statistics and the truth to a store.

    Each run's analyses (:data:`STUDY_ANALYSES`, on the test split, seeded with the run's
    seed) are written into its run directory by :func:`analyse_run`, and its pooled rows, with
    the run's metadata and :func:`truth`, into the store of the study's ``kind:
    counterfactual`` table (where ``modalab tables`` reads it; else ``<store>_analysis``), one
    Parquet file per run written atomically. Runs already there are skipped: it resumes.

    Args:
        study: The study file (trained by ``modalab sweep STUDY``).
        smoke: Analyse the ``--smoke`` sweep (stores and run folder ``..._smoke``).
        metric: ``accuracy`` or ``log_prob``.
        max_samples: Analyse the first ``max_samples`` test samples only (0: all).
        intuition: Dominant modality per non-``shapes`` dataset (default ``avmnist: audio``:
            on the official protocol the unimodal baselines put the audio ahead of the
            PCA-degraded image, docs/datasets.md).
        head_hidden: Hidden width of the head fitted on encoder-only methods' frozen features
            (``None``: the ``head_hidden`` of the study's counterfactual table, default 0,
            a linear head).

    Returns:
        The analysis store.

    Raises:
        ConfigError: If the study's store holds no runs.
    """
    spec, suffix = load_study(study), "_smoke" if smoke else ""
    specs = [t for t in load_tables(study) if t.kind == "counterfactual"]
    named = [t.store for t in specs if t.store]
    name = Path(named[0]).name if named else f"{Path(spec.store).name}_analysis"
    if head_hidden is None:
        head_hidden = specs[0].head_hidden if specs else 0
    results = ResultsStore(Path(spec.store).parent / (name + suffix))
    trained = ResultsStore(spec.store + suffix).read()
    if trained.empty:
        raise ConfigError(f"{spec.store + suffix} holds no runs: run `modalab sweep {study}`.")
    done = results.read()
    analysed = set() if done.empty else set(done.run_id)
    if analysed:
        # An analysis store holds one head width: a run analysed with another is stale.
        widths = done.loc[done.metric == "analysis_head_hidden", "value"]
        other = sorted({int(w) for w in widths} - {head_hidden})
        if other or (widths.empty and head_hidden):
            found = other or [0]
            raise ConfigError(
                f"{results.root} holds analyses with a head of hidden width {found}, not "
                f"{head_hidden}: delete that folder to analyse again, or pass "
                f"--head-hidden {found[0]}."
            )
    for run_id, part in trained.groupby("run_id", sort=True):
        if str(run_id) in analysed:
            continue
        start = time.perf_counter()
        run_dir = Path(spec.output_dir + suffix) / str(run_id)
        seed = int(part["seed"].iloc[0])
        report, _ = analyse_run(
            run_dir,
            STUDY_ANALYSES,
            metric=metric,
            seed=seed,
            max_samples=max_samples,
            head_hidden=head_hidden,
        )
        meta = part.iloc[0].drop(["metric", "modality", "condition", "value"]).to_dict()
        values, config = pooled_rows(report.table), load_yaml(run_dir / CONFIG_FILE)
        assert report.shapley is not None
        expected = truth(config, report.shapley.modalities, intuition or {"avmnist": "audio"})
        for m, (share, top) in expected.items():
            values += [("truth_share", m, share), ("truth_dominant", m, top)]
        values.append(("analysis_head_hidden", "", float(head_hidden)))
        rows = [
            {**meta, "metric": k, "modality": m, "condition": metric, "value": v}
            for k, m, v in values
        ]
        results.append(str(run_id), rows)
        label = " ".join(str(part.iloc[0][c]) for c in ("data", "method", "seed"))
        print(f"{label}: {time.perf_counter() - start:.1f} s", flush=True)
    return results.root
