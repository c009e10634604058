"""The runner: composes data, model and method from a config, trains with Lightning, evaluates.

A run directory holds the resolved config (``config.yaml``), the metrics (``metrics.json`` and
the row-per-metric ``metrics.csv``), the checkpoints and the CSV/TensorBoard logs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
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
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
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
from modalab.experiments.config import ConfigError
from modalab.experiments.io import atomic_write_text
from modalab.methods.registry import METHODS
from modalab.models.encoders import build_encoder
from modalab.models.multimodal import MultimodalEncoder

__all__ = ["RunResult", "build_data", "build_encoders", "build_method", "run"]


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        run_dir: The run directory.
        metrics: The evaluation records.
        config: The resolved config.
        train_seconds: Wall time of training.
        eval_seconds: Wall time of evaluation.
        is_global_zero: False in the other processes of a DDP run, which neither evaluate
            nor write results (their ``metrics`` are empty).
    """

    run_dir: Path
    metrics: list[MetricRecord]
    config: dict[str, Any]
    train_seconds: float
    eval_seconds: float
    is_global_zero: bool = True

    def table(self) -> pd.DataFrame:
        """The metrics as a DataFrame, one row per metric × modality × condition."""
        return pd.DataFrame([dataclasses.asdict(r) for r in self.metrics])

    def value(self, metric: str, modality: str = "", condition: str | None = None) -> float:
        """The value of one metric (the first whose condition matches, if given)."""
        for r in self.metrics:
            if r.metric == metric and r.modality == modality and (
                condition is None or r.condition == condition
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
    method_cfg: Mapping[str, Any],
    encoder: MultimodalEncoder,
    splits: Splits,
    embed_dim: int,
    seed: int = 0,
) -> L.LightningModule:
    """Build the method recipe named by ``method_cfg["name"]``.

    Builders that declare the parameters ``example`` (a two-sample training batch),
    ``data_info`` (the dataset's info, e.g. ``vocab_size`` and ``mask_id``) or ``seed`` (the
    run's seed, for their own random state) receive them.
    """
    kwargs = dict(method_cfg)
    name = kwargs.pop("name")
    try:
        builder = METHODS.get(name)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    params = inspect.signature(builder).parameters
    context = {
        "example": lambda: splits.train.__getitems__([0, 1]),
        "data_info": lambda: dict(splits.info),
        "seed": lambda: seed,
    }
    extra = {k: make() for k, make in context.items() if k in params and k not in kwargs}
    return _call_with_config(  # type: ignore[no-any-return]
        builder, kwargs, f"method ({name})",
        encoder=encoder, num_classes=splits.num_classes, embed_dim=embed_dim, **extra,
    )


#: Environment variable through which the launching process hands its run directory to the
#: processes Lightning's DDP strategy starts (they re-run the same command).
RUN_DIR_ENV = "MODALAB_RUN_DIR"


def _launched_rank() -> int:
    """This process's rank as set by a launcher (0 for the process that launches the others)."""
    for variable in ("RANK", "LOCAL_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def _run_dir(cfg: Mapping[str, Any]) -> Path:
    if _launched_rank() != 0 and RUN_DIR_ENV in os.environ:
        # A DDP worker: it writes nothing (config, metrics, logs and checkpoints are written
        # by global rank 0 only); the directory only needs to exist.
        return Path(os.environ[RUN_DIR_ENV])
    name = cfg["run_name"] or (
        f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg['data']['name']}-{cfg['method']['name']}"
        f"-s{cfg['seed']}"
    )
    run_dir = Path(cfg["output_dir"]) / name
    if (run_dir / "metrics.json").exists():
        raise ConfigError(
            f"Run directory {run_dir} already holds finished results; choose another "
            "run_name= or output_dir= (results are never overwritten)."
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    return run_dir


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
    seed = int(plain["seed"])
    L.seed_everything(seed, workers=True, verbose=False)
    splits = build_data(plain["data"])
    L.seed_everything(seed, workers=True, verbose=False)
    encoder = build_encoders(plain["model"], splits)
    method = build_method(
        plain["method"], encoder, splits, int(plain["model"]["embed_dim"]), seed=seed
    )
    try:
        eval_cfg = EvalConfig(**plain["eval"])
    except TypeError as error:
        raise ConfigError(f"Invalid eval config: {error}") from None
    trainer_cfg = dict(plain["trainer"])
    batch_size = int(trainer_cfg.pop("batch_size"))
    if quiet:
        trainer_cfg["enable_progress_bar"] = False

    run_dir = _run_dir(plain)
    if _launched_rank() == 0:
        atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plain)))
    trainer = L.Trainer(
        **trainer_cfg,
        default_root_dir=str(run_dir),
        logger=[
            CSVLogger(str(run_dir), name="logs", version=""),
            TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
        ],
        callbacks=[ModelCheckpoint(dirpath=str(run_dir / "checkpoints"), save_last=True)],
        enable_model_summary=not quiet,
        num_sanity_val_steps=0,
    )
    train_loader = make_loader(splits.train, batch_size, shuffle=True, drop_last=True, seed=seed)
    val_loader = make_loader(splits.val, batch_size)
    start = time.perf_counter()
    trainer.fit(method, train_loader, val_loader)
    train_seconds = time.perf_counter() - start
    if not trainer.is_global_zero:
        # Under DDP only global rank 0 evaluates and writes results.
        return RunResult(run_dir, [], plain, train_seconds, 0.0, is_global_zero=False)

    start = time.perf_counter()
    method.eval()
    encode = method.representations  # type: ignore[attr-defined]
    project = method.joint_embeddings  # type: ignore[attr-defined]
    features = [
        extract_features(encode, split, project, eval_cfg.batch_size, device=method.device)
        for split in (splits.train, splits.val, splits.test)
    ]
    metrics = evaluate_representations(*features, splits.num_classes, eval_cfg, seed=seed)
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
