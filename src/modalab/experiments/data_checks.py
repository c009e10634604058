"""Checks of a run that need the machine or the built data (the runner's two hook lines).

:func:`check_environment` runs before anything is written (no GPU for
``trainer.accelerator=gpu``, an unwritable ``output_dir=`` or ``store=``);
:func:`check_run_data` runs on the built splits, before any scenario or training: split
leakage, labels, split sizes, and the config keys whose validity depends on the data
(``eval.knn_k`` against the training size, scenarios and methods against the modalities).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modalab.data.integrity import (
    check_labels,
    check_split_sizes,
    remove_split_leakage,
)
from modalab.data.tensor_dataset import DataInfo, Splits
from modalab.experiments.errors import ConfigError, EnvironmentProblem

__all__ = ["CROSS_MODAL_METHODS", "PAIRWISE_SCENARIOS", "check_environment", "check_run_data"]

#: Methods that relate modalities to each other and need at least two.
CROSS_MODAL_METHODS = frozenset(
    {"clip", "clip_rince", "coca", "slip", "fusion", "ogm_ge", "grad_blend", "distill"}
)
#: Scenarios that act between modalities and have nothing to act on with one.
PAIRWISE_SCENARIOS = frozenset({"misalign"})


def _writable(folder: Path) -> str | None:
    """Why ``folder`` cannot be written (``None`` if it can); creates it if needed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def check_environment(cfg: Mapping[str, Any]) -> None:
    """Refuse a run the machine cannot do, before any file is written.

    Raises:
        EnvironmentProblem: No GPU (or MPS) for the accelerator asked, or an unwritable
            ``output_dir`` / ``store`` folder.
    """
    import torch

    accelerator = str(cfg.get("trainer", {}).get("accelerator", "cpu"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise EnvironmentProblem(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible to PyTorch "
            f"(torch {torch.__version__}, CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}). Use trainer.accelerator=cpu "
            "(or auto), or install a CUDA build of PyTorch."
        )
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise EnvironmentProblem(
            "trainer.accelerator=mps but MPS is not available here; use trainer.accelerator=cpu."
        )
    for key in ("output_dir", "store"):
        folder = str(cfg.get(key) or "")
        if not folder:
            continue
        why = _writable(Path(folder))
        if why is not None:
            raise EnvironmentProblem(
                f"{key}={folder} cannot be written ({why}). Choose a writable folder with "
                f"{key}=DIR or fix its permissions."
            )


def check_run_data(cfg: Mapping[str, Any], splits: Splits) -> Splits:
    """Check the built data and the config keys that depend on it.

    Args:
        cfg: The run's resolved config (plain).
        splits: The built splits.

    Returns:
        The splits, with held-out copies of training samples removed under
        ``data.on_error=skip`` (recorded in ``info.leakage``).

    Raises:
        DataError: Leakage between splits, labels outside the classes, splits too small.
        ConfigError: ``eval.knn_k`` above the training size, a scenario or method that has
            nothing to act on with these modalities.
    """
    data = cfg["data"]
    where = f"data={data['name']}"
    modalities = list(splits.modalities)
    for name, node in (cfg.get("scenario") or {}).items():
        wanted = list((node or {}).get("modalities") or [])
        one = (node or {}).get("modality")
        wanted += [one] if one else []
        unknown = [m for m in wanted if m not in modalities]
        if unknown:
            raise ConfigError(
                f"scenario.{name} names modalities {unknown}, which {where} does not have; its "
                f"modalities are {modalities}."
            )
        if name in PAIRWISE_SCENARIOS and len(modalities) < 2:
            raise ConfigError(
                f"scenario={name} acts between two modalities, but {where} has only "
                f"{modalities}: it would change nothing and record a severity anyway. Use "
                "data with two modalities or another scenario."
            )
    method = str(cfg["method"]["name"])
    if method in CROSS_MODAL_METHODS and len(modalities) < 2:
        raise ConfigError(
            f"method={method} relates modalities to each other and needs at least two; "
            f"{where} has only {modalities}. Use a single-modality method (simclr, byol, "
            "supervised, ...) or data with two modalities."
        )
    check_labels(splits, where)
    check_finite_inputs(splits, where)
    sizes = ("data.n_samples", "data.max_per_split", "data.max_images")
    hint = [f"{k}=" for k in sizes if k.split(".")[1] in data]
    check_split_sizes(splits, where, hint)
    on_error = str(data.get("on_error", "raise"))
    before = {s: len(getattr(splits, s)) for s in ("val", "test")}
    splits = remove_split_leakage(splits, on_error, where, can_skip="on_error" in data)
    leakage = splits.info.leakage
    if leakage is not None and before != {s: len(getattr(splits, s)) for s in before}:
        warnings.warn(
            f"{where}: removed held-out copies of training samples: {leakage['removed']}.",
            stacklevel=2,
        )
        check_split_sizes(splits, where, hint)
    knn_k = int(cfg.get("eval", {}).get("knn_k", 1))
    if knn_k > len(splits.train):
        raise ConfigError(
            f"eval.knn_k={knn_k} is larger than the training split ({len(splits.train)} "
            f"samples of {where}); use eval.knn_k <= {len(splits.train)}."
        )
    return splits


def integrity_records(info: DataInfo) -> list[Any]:
    """Metric records of what the data build dropped (none when nothing was dropped).

    ``skipped_files`` counts files skipped under ``data.on_error=skip`` (``info.skipped``,
    e.g. unreadable images); ``removed_duplicates`` counts held-out copies of training
    samples removed (``info.leakage``). They go to ``metrics.json``, the results store
    and the report with the other metrics.
    """
    from modalab.evaluation.features import MetricRecord

    records = []
    if info.skipped is not None and int(info.skipped.get("count", 0)):
        records.append(MetricRecord("skipped_files", float(info.skipped["count"]), "data"))
    if info.leakage is not None:
        removed = sum(int(v) for v in info.leakage.get("removed", {}).values())
        if removed:
            records.append(MetricRecord("removed_duplicates", float(removed), "data"))
    return records


def check_finite_inputs(splits: Splits, where: str) -> None:
    """Refuse NaN/Inf in any floating-point input of any split (before training).

    Raises:
        DataError: Naming the split, the modality and how many samples hold them.
    """
    import torch

    from modalab.data.indexed import IndexedMultimodalDataset
    from modalab.experiments.errors import DataError

    for split in ("train", "val", "test"):
        data = getattr(splits, split)
        for name in data.modalities:
            if isinstance(data, IndexedMultimodalDataset):
                # Check the pool of unique inputs chunk by chunk, then index it per sample:
                # the same verdict without materialising every sample in float32 (AV-MNIST:
                # 3.7 GB of float32 inputs for 70,000 samples that share 8,500 pool rows).
                bad = _nonfinite_pool_rows(data.pools[name])[data.rows[name]]
            else:
                values = data.inputs[name]
                if not torch.is_floating_point(values):
                    continue
                bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
            bad &= data.present[name].to(bad.device).bool()  # absent samples are not inputs
            if bool(bad.any()):
                rows = torch.nonzero(bad).flatten()[:5].tolist()
                raise DataError(
                    f"{where}: {int(bad.sum())} {split} sample(s) of {name} hold NaN or Inf "
                    f"values (rows {rows}...); every metric on them would be undefined. Fix "
                    "or remove those samples in the data files."
                )


def _nonfinite_pool_rows(pool: Any, chunk: int = 1024) -> Any:
    """``[U]`` bool: which rows of a pool hold NaN or Inf (all false for integer pools)."""
    import torch

    bad = torch.zeros(pool.shape[0], dtype=torch.bool)
    if not torch.is_floating_point(pool):
        return bad
    for start in range(0, pool.shape[0], chunk):
        part = pool[start : start + chunk]
        bad[start : start + len(part)] = ~torch.isfinite(part.reshape(len(part), -1)).all(dim=1)
    return bad


def check_finite_features(features: Mapping[str, Any], run_dir: Path) -> None:
    """Stop with ``failure.json`` when evaluation features hold NaN/Inf.

    Args:
        features: Split name → extracted features (``.features`` and ``.joint`` dicts).
        run_dir: Where ``failure.json`` is written.

    Raises:
        TrainingError: Naming the split and the modality; weights and checkpoints are kept.
    """
    import torch

    from modalab.experiments.errors import TrainingError
    from modalab.experiments.rundir import write_failure

    for split, feats in features.items():
        for kind in ("features", "joint"):
            for name, values in (getattr(feats, kind, None) or {}).items():
                bad = ~torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
                present = (getattr(feats, "present", None) or {}).get(name)
                if present is not None:  # absent samples carry no features to check
                    bad &= present.to(bad.device).bool()
                if bool(bad.any()):
                    message = (
                        f"Evaluation found NaN/Inf in the {split} {kind} of {name} "
                        f"({int(bad.sum())} of {values.shape[0]} samples); no metric was "
                        "written. The model diverged or the inputs hold non-finite values: "
                        "check the data, lower method.lr or set trainer.gradient_clip_val."
                    )
                    write_failure(run_dir, message)
                    raise TrainingError(message)
