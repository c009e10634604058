"""Experiment-tracking loggers of a run, chosen by name: ``csv``, ``tensorboard``, ``mlflow``.

``csv`` (``<run>/logs/metrics.csv``, read by ``modalab report``) and ``tensorboard``
(``<run>/tensorboard/``) are on by default. ``mlflow`` logs the same metrics and the flattened
config to an MLflow tracking store, by default a local file store ``<output_dir>/mlruns``
shared by all runs of that folder (browse it with ``mlflow ui --backend-store-uri
<output_dir>/mlruns``; MLflow 3 needs ``MLFLOW_ALLOW_FILE_STORE=true`` for a file store, which
modalab sets for its default store), or any ``mlflow.tracking_uri=`` (e.g. a database or a
server). MLflow is an optional dependency: ``pip install "modalab[mlflow]"``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger, Logger, MLFlowLogger, TensorBoardLogger

from modalab.experiments.config import ConfigError, MlflowConfig

__all__ = ["LOGGERS", "MlflowConfig", "build_loggers"]

#: Logger names accepted by ``loggers=[...]``.
LOGGERS: tuple[str, ...] = ("csv", "tensorboard", "mlflow")


def _mlflow_installed() -> bool:
    return importlib.util.find_spec("mlflow") is not None


def build_loggers(
    names: Sequence[str],
    run_dir: str | Path,
    mlflow: MlflowConfig | None = None,
    params: Mapping[str, Any] | None = None,
) -> list[Logger]:
    """The Lightning loggers named in ``names``, writing into ``run_dir``.

    Args:
        names: Subset of :data:`LOGGERS`, in order.
        run_dir: The run directory (its parent holds the default MLflow store).
        mlflow: Settings of the ``mlflow`` logger.
        params: Hyperparameters logged to MLflow (the flattened config).

    Returns:
        The loggers.

    Raises:
        ConfigError: For an unknown or repeated name, or ``mlflow`` without MLflow installed.

    Example:
        >>> import tempfile
        >>> [type(x).__name__ for x in build_loggers(["csv"], tempfile.mkdtemp())]
        ['CSVLogger']
        >>> build_loggers(["wandb"], ".")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        modalab.experiments.errors.ConfigError: Unknown logger 'wandb' ... mlflow.
    """
    run_dir = Path(run_dir)
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(
                f"Unknown logger {name!r} in loggers={list(names)}; valid: {', '.join(LOGGERS)}."
            )
    if len(set(names)) != len(names):
        raise ConfigError(f"loggers={list(names)} names a logger twice.")
    loggers: list[Logger] = []
    for name in names:
        if name == "csv":
            loggers.append(CSVLogger(str(run_dir), name="logs", version=""))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard", version=""))
        else:
            loggers.append(_mlflow_logger(run_dir, mlflow or MlflowConfig(), params))
    return loggers


def _mlflow_logger(
    run_dir: Path, config: MlflowConfig, params: Mapping[str, Any] | None
) -> MLFlowLogger:
    if not _mlflow_installed():
        raise ConfigError(
            "loggers=[...,mlflow] needs MLflow, which is not installed: "
            'pip install "modalab[mlflow]" (or pip install mlflow-skinny), or drop mlflow from '
            "loggers=."
        )
    uri = config.tracking_uri
    if not uri:
        uri = (run_dir.parent / "mlruns").resolve().as_uri()
        # MLflow 3 keeps its file store in maintenance mode and refuses it unless asked for;
        # the local file store needs no database and is what a single machine wants.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    logger = MLFlowLogger(
        experiment_name=config.experiment_name,
        run_name=run_dir.name,
        tracking_uri=uri,
        tags={"modalab.run_dir": str(run_dir.resolve())},
    )
    if params:
        logger.log_hyperparams(dict(params))
    return logger
