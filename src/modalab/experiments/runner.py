"""The runner: composes data, model and method from a config, trains with Lightning, evaluates.

A run directory holds the resolved config (``config.yaml``), the metrics (``metrics.json`` and
the row-per-metric ``metrics.csv``), the checkpoints and the CSV/TensorBoard logs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf
from torch import nn

from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import Splits, make_loader
from modalab.evaluation.features import (
    EvalConfig,
    MetricRecord,
    evaluate_representations,
    extract_features,
)
from modalab.experiments.callbacks import FiniteGuard, NonFiniteError, RNGStateCheckpoint
from modalab.experiments.checkpoint import save_weights
from modalab.experiments.config import ConfigError, MlflowConfig
from modalab.experiments.io import atomic_write_text, load_yaml
from modalab.experiments.loggers import build_loggers
from modalab.methods.registry import METHODS, RepresentationLearner
from modalab.models.encoders import build_encoder
from modalab.models.multimodal import MultimodalEncoder

__all__ = [
    "RunResult",
    "TrainingError",
    "build_data",
    "build_encoders",
    "build_method",
    "load_finished",
    "run",
]


class TrainingError(RuntimeError):
    """Training failed (e.g. a non-finite loss); the message says what was kept and what to do."""


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        run_dir: The run directory.
        metrics: The evaluation records.
        config: The resolved config.
        train_seconds: Wall time of training.
        eval_seconds: Wall time of evaluation.
    """

    run_dir: Path
    metrics: list[MetricRecord]
    config: dict[str, Any]
    train_seconds: float
    eval_seconds: float

    def table(self) -> pd.DataFrame:
        """The metrics as a DataFrame, one row per metric × modality × condition."""
        return pd.DataFrame([dataclasses.asdict(r) for r in self.metrics])

    def value(self, metric: str, modality: str = "", condition: str | None = None) -> float:
        """The value of one metric (the first whose condition matches, if given)."""
        for r in self.metrics:
            if (
                r.metric == metric
                and r.modality == modality
                and (condition is None or r.condition == condition)
            ):
                return r.value
        raise KeyError(f"No metric {metric!r} for {modality!r} ({condition}).")


def _call_with_config(
    builder: Callable[..., Any], kwargs: Mapping[str, Any], where: str, **extra: Any
) -> Any:
    """Call a builder with config kwargs, turning a bad keyword into a ConfigError."""
    params = inspect.signature(builder).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = [k for k in kwargs if k not in params]
    if unknown and not accepts_any:
        valid = [k for k in params if k not in extra and params[k].kind.name != "VAR_POSITIONAL"]
        raise ConfigError(f"Unknown keys {unknown} in {where}; valid keys: {valid}.")
    try:
        return builder(**extra, **kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid {where}: {error}") from error


def build_data(data_cfg: Mapping[str, Any]) -> Splits:
    """Build the dataset splits named by ``data_cfg["name"]`` with the other keys."""
    kwargs = dict(data_cfg)
    name = kwargs.pop("name")
    try:
        builder = DATASETS.get(name)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    return _call_with_config(builder, kwargs, f"data ({name})")  # type: ignore[no-any-return]


def build_encoders(model_cfg: Mapping[str, Any], splits: Splits) -> MultimodalEncoder:
    """Per-modality encoders for the modalities of ``splits``."""
    choices = dict(model_cfg.get("encoders", {}))
    unknown = sorted(set(choices) - set(splits.modalities))
    if unknown:
        raise ConfigError(
            f"model.encoders names modalities {unknown} that the dataset does not have; "
            f"its modalities are {list(splits.modalities)}."
        )
    example = splits.train.__getitems__([0, 1])
    encoders = nn.ModuleDict()
    for modality in splits.modalities:
        try:
            encoders[modality] = build_encoder(
                choices.get(modality, "auto"),
                example.inputs[modality],
                int(model_cfg["embed_dim"]),
                vocab_size=splits.info.get("vocab_size"),
            )
        except KeyError as error:
            raise ConfigError(f"model.encoders.{modality}: {error.args[0]}") from None
    return MultimodalEncoder(encoders)


def build_method(
    method_cfg: Mapping[str, Any], encoder: MultimodalEncoder, splits: Splits, embed_dim: int
) -> L.LightningModule:
    """Build the method recipe named by ``method_cfg["name"]``."""
    kwargs = dict(method_cfg)
    name = kwargs.pop("name")
    try:
        builder = METHODS.get(name)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    return _call_with_config(  # type: ignore[no-any-return]
        builder,
        kwargs,
        f"method ({name})",
        encoder=encoder,
        num_classes=splits.num_classes,
        embed_dim=embed_dim,
    )


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _run_dir(cfg: Mapping[str, Any]) -> Path:
    """The run directory: new, or the interrupted one to resume (checked against its config)."""
    if cfg["resume"] and not cfg["run_name"]:
        raise ConfigError(
            "resume=true needs the run_name= of the run to continue (its directory name under "
            "output_dir=)."
        )
    name = cfg["run_name"] or (
        f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg['data']['name']}-{cfg['method']['name']}"
        f"-s{cfg['seed']}"
    )
    run_dir = Path(cfg["output_dir"]) / name
    saved_config = run_dir / "config.yaml"
    if not cfg["resume"]:
        if (run_dir / "metrics.json").exists():
            raise ConfigError(
                f"Run directory {run_dir} already holds finished results; choose another "
                "run_name= or output_dir= (results are never overwritten)."
            )
        if saved_config.exists():
            raise ConfigError(
                f"Run directory {run_dir} holds an unfinished run; add resume=true to continue "
                "it from its last checkpoint, or choose another run_name=."
            )
    elif saved_config.exists():
        previous = _flatten(load_yaml(saved_config))
        current = _flatten(cfg)
        ignore = {"resume", "trainer.enable_progress_bar", "loggers"}
        ignore |= {k for k in set(previous) | set(current) if k.startswith("mlflow.")}
        differ = sorted(
            k
            for k in set(previous) | set(current)
            if k not in ignore and previous.get(k) != current.get(k)
        )
        if differ:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in differ)
            raise ConfigError(
                f"resume=true, but the config differs from the one saved in {saved_config}: "
                f"{details}. Resume with the same config, or start a new run_name=."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def load_finished(run_dir: str | Path) -> RunResult:
    """Load the result of a finished run from its ``metrics.json`` and ``config.yaml``."""
    run_dir = Path(run_dir)
    payload = json.loads((run_dir / "metrics.json").read_text())
    return RunResult(
        run_dir=run_dir,
        metrics=[MetricRecord(**m) for m in payload["metrics"]],
        config=load_yaml(run_dir / "config.yaml"),
        train_seconds=float(payload["train_seconds"]),
        eval_seconds=float(payload["eval_seconds"]),
    )


def _versions() -> dict[str, str]:
    import hydra
    import monai
    import sklearn

    import modalab

    return {
        "modalab": modalab.__version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "hydra": hydra.__version__,
        "monai": monai.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }


def run(cfg: DictConfig | Mapping[str, Any], quiet: bool = False) -> RunResult:
    """Train and evaluate one configuration.

    Args:
        cfg: A composed config (see :func:`~modalab.experiments.config.compose_config`).
        quiet: Disable the progress bar and Lightning's console summaries.

    Returns:
        The run's result; everything is also written to its run directory.
    """
    plain: dict[str, Any] = (
        OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        if isinstance(cfg, DictConfig)
        else dict(cfg)
    )
    plain.pop("defaults", None)
    plain.setdefault("resume", False)
    seed = int(plain["seed"])
    run_dir = _run_dir(plain)
    if plain["resume"] and (run_dir / "metrics.json").exists():
        return load_finished(run_dir)
    L.seed_everything(seed, workers=True, verbose=False)
    splits = build_data(plain["data"])
    L.seed_everything(seed, workers=True, verbose=False)
    encoder = build_encoders(plain["model"], splits)
    method = build_method(plain["method"], encoder, splits, int(plain["model"]["embed_dim"]))
    try:
        eval_cfg = EvalConfig(**plain["eval"])
    except TypeError as error:
        raise ConfigError(f"Invalid eval config: {error}") from None
    trainer_cfg = dict(plain["trainer"])
    batch_size = int(trainer_cfg.pop("batch_size"))
    if batch_size < 2:
        raise ConfigError(f"trainer.batch_size={batch_size} must be at least 2.")
    if len(splits.train) < batch_size:
        # drop_last would leave no batch at all: train on the whole split as one batch.
        batch_size = len(splits.train)
    if quiet:
        trainer_cfg["enable_progress_bar"] = False

    config_text = OmegaConf.to_yaml(OmegaConf.create(plain))
    if not (run_dir / "config.yaml").exists():
        atomic_write_text(run_dir / "config.yaml", config_text)
    checkpoints = run_dir / "checkpoints"
    resume_from = checkpoints / "last.ckpt" if plain["resume"] else None
    if resume_from is not None and not resume_from.exists():
        resume_from = None  # interrupted before the first checkpoint: start over
    trainer = L.Trainer(
        **trainer_cfg,
        default_root_dir=str(run_dir),
        logger=build_loggers(
            plain.get("loggers", ["csv", "tensorboard"]),
            run_dir,
            MlflowConfig(**plain.get("mlflow", {})),
            params=_flatten(plain),
        ),
        callbacks=[
            ModelCheckpoint(dirpath=str(checkpoints), save_last=True),
            FiniteGuard(),
            RNGStateCheckpoint(),
        ],
        enable_model_summary=not quiet,
        num_sanity_val_steps=0,
    )
    train_loader = make_loader(splits.train, batch_size, shuffle=True, drop_last=True, seed=seed)
    val_loader = make_loader(splits.val, batch_size)
    start = time.perf_counter()
    try:
        trainer.fit(method, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    except NonFiniteError as error:
        last = checkpoints / "last.ckpt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        message = (
            f"{error} Training stopped; {kept}. Lower method.lr, set "
            "trainer.gradient_clip_val, or check the data for NaN/Inf values."
        )
        atomic_write_text(run_dir / "failure.json", json.dumps({"error": message}, indent=2))
        raise TrainingError(message) from None
    train_seconds = time.perf_counter() - start
    save_weights(method, run_dir, config_text)

    start = time.perf_counter()
    method.eval()
    if not isinstance(method, RepresentationLearner):
        raise TypeError(f"{type(method).__name__} lacks representations/joint_embeddings.")
    train_f, val_f, test_f = (
        extract_features(
            method.representations,
            split,
            method.joint_embeddings,
            eval_cfg.batch_size,
            device=method.device,
        )
        for split in (splits.train, splits.val, splits.test)
    )
    metrics = evaluate_representations(
        train_f, val_f, test_f, splits.num_classes, eval_cfg, seed=seed
    )
    eval_seconds = time.perf_counter() - start

    result = RunResult(run_dir, metrics, plain, train_seconds, eval_seconds)
    _write_metrics(result)
    return result


def _write_metrics(result: RunResult) -> None:
    cfg = result.config
    payload = {
        "data": cfg["data"]["name"],
        "method": cfg["method"]["name"],
        "seed": cfg["seed"],
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "versions": _versions(),
        "metrics": [dataclasses.asdict(r) for r in result.metrics],
    }
    table = result.table()
    table.insert(0, "method", cfg["method"]["name"])
    table.insert(0, "data", cfg["data"]["name"])
    table.insert(2, "seed", cfg["seed"])
    atomic_write_text(result.run_dir / "metrics.csv", table.to_csv(index=False))
    # metrics.json last: its presence marks a finished run.
    atomic_write_text(result.run_dir / "metrics.json", json.dumps(payload, indent=2))
