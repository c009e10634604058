"""Typed configuration schema, composed by Hydra at the entry point only.

Every config group (``data=``, ``model=``, ``method=``, ``eval=``, ``trainer=``) has one
structured config (a dataclass) per option, registered in Hydra's ``ConfigStore``. Composition
happens in struct mode, so an unknown key or a value of the wrong type is an error before any
training. Library code never sees the whole config: the runner hands each component its own
plain arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from modalab.data.shapes import ShapesConfig
from modalab.evaluation.features import EvalConfig

__all__ = [
    "ClipMethodConfig",
    "ConfigError",
    "MlflowConfig",
    "ModelConfig",
    "RunConfig",
    "SupervisedMethodConfig",
    "TrainerConfig",
    "compose_config",
    "register_configs",
]


class ConfigError(ValueError):
    """A configuration that cannot be composed or is invalid; the message says how to fix it."""


@dataclass
class ShapesDataConfig(ShapesConfig):
    """``data=shapes``: the embedded synthetic dataset (see :class:`ShapesConfig`)."""

    name: str = "shapes"


@dataclass
class ModelConfig:
    """``model=default``: per-modality encoders.

    Attributes:
        embed_dim: Output dimension of every encoder (the representation size).
        encoders: Modality → registered encoder name; modalities not listed use ``auto``
            (chosen from the input's type and rank).
    """

    embed_dim: int = 128
    encoders: dict[str, str] = field(default_factory=dict)


@dataclass
class ClipMethodConfig:
    """``method=clip``: CLIP symmetric InfoNCE over all modality pairs."""

    name: str = "clip"
    lr: float = 2e-3  # peak AdamW learning rate
    weight_decay: float = 1e-4
    temperature: float = 0.07  # initial temperature
    learn_temperature: bool = True
    proj_dim: int = 64  # joint embedding size
    proj_hidden: int = 0  # 0: linear projection head (CLIP); >0: two-layer MLP head


@dataclass
class SupervisedMethodConfig:
    """``method=supervised``: supervised late fusion (the baseline)."""

    name: str = "supervised"
    lr: float = 2e-3
    weight_decay: float = 1e-4
    fusion: str = "concat"  # concat | mean (over present modalities)
    hidden: int = 128  # hidden width of the classification head


@dataclass
class TrainerConfig:
    """``trainer=default``: arguments of the Lightning Trainer and of the data loaders."""

    max_epochs: int = 15
    batch_size: int = 256
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    deterministic: bool = True
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 5
    check_val_every_n_epoch: int = 1
    enable_progress_bar: bool = True


@dataclass
class MlflowConfig:
    """``mlflow.*``: where the optional ``mlflow`` logger writes (``loggers=[...,mlflow]``).

    Attributes:
        tracking_uri: MLflow tracking URI; empty: the local file store ``<output_dir>/mlruns``.
        experiment_name: MLflow experiment the runs are grouped under.
    """

    tracking_uri: str = ""
    experiment_name: str = "modalab"


@dataclass
class RunConfig:
    """The root config of ``modalab run``."""

    defaults: list[Any] = field(
        default_factory=lambda: [
            "_self_",
            {"data": "shapes"},
            {"model": "default"},
            {"method": "clip"},
            {"eval": "default"},
            {"trainer": "default"},
        ]
    )
    data: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    eval: Any = MISSING
    trainer: Any = MISSING
    seed: int = 0
    output_dir: str = "runs"  # parent folder of run directories
    run_name: str = ""  # run directory name; default: <time>-<data>-<method>-s<seed>
    resume: bool = False  # continue an interrupted run (needs run_name) from its last checkpoint
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])  # + mlflow
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


_REGISTERED = False


def register_configs() -> None:
    """Register every config group option in Hydra's ConfigStore (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    cs = ConfigStore.instance()
    cs.store(name="config", node=RunConfig)
    cs.store(group="data", name="shapes", node=ShapesDataConfig)
    cs.store(group="model", name="default", node=ModelConfig)
    cs.store(group="method", name="clip", node=ClipMethodConfig)
    cs.store(group="method", name="supervised", node=SupervisedMethodConfig)
    cs.store(group="eval", name="default", node=EvalConfig)
    cs.store(group="trainer", name="default", node=TrainerConfig)
    _REGISTERED = True


def group_options(group: str) -> list[str]:
    """Names of the registered options of a config group."""
    register_configs()
    repo = ConfigStore.instance().repo.get(group, {})
    return sorted(name.removesuffix(".yaml") for name in repo)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """Compose the run config from command-line style overrides, in struct mode.

    Args:
        overrides: e.g. ``["method=supervised", "data.n_samples=2000"]``.

    Returns:
        The composed, read-only-structured config.

    Raises:
        ConfigError: Naming the bad key or value and the valid options.

    Example:
        >>> cfg = compose_config(["method=supervised", "trainer.max_epochs=2"])
        >>> cfg.method.name, cfg.trainer.max_epochs
        ('supervised', 2)
    """
    register_configs()
    try:
        with initialize_config_module(config_module="modalab.conf", version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (ConfigCompositionException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error)) from None
    OmegaConf.set_struct(cfg, True)
    return cfg


def _explain(error: Exception) -> str:
    message = str(error)
    cause = error.__cause__
    if cause is not None and str(cause) not in message:
        message = f"{message}\n{cause}"
    for group in ("data", "model", "method", "eval", "trainer"):
        if f"'{group}'" in message or f"{group}=" in message or f"group {group}" in message:
            message += f"\nValid options for {group}=: {', '.join(group_options(group))}."
            break
    return message + "\nRun `modalab run --cfg` to print the full default config."
