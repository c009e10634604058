"""Typed configuration schema, composed by Hydra at the entry point only.

Every config group (``data=``, ``model=``, ``method=``, ``eval=``, ``trainer=``) has one
structured config (a dataclass) per option, registered in Hydra's ``ConfigStore``. Composition
happens in struct mode, so an unknown key or a value of the wrong type is an error before any
training. Library code never sees the whole config: the runner hands each component its own
plain arguments.
"""

from __future__ import annotations

import inspect
import re
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, make_dataclass
from functools import partial
from typing import Any, Literal

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import II, MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from modalab.data import DATASETS
from modalab.evaluation.features import EvalConfig
from modalab.experiments.allocator import ALLOCATORS
from modalab.experiments.errors import ConfigError
from modalab.methods import METHODS
from modalab.registry import RegistryEntry
from modalab.scenarios import SCENARIOS
from modalab.schedules import EarlyStoppingConfig, LRSchedule

__all__ = [
    "ConfigError",
    "MlflowConfig",
    "ModelConfig",
    "RunConfig",
    "TrainerConfig",
    "compose_config",
    "data_config",
    "method_config",
    "register_configs",
    "validate_config",
]


@dataclass
class ModelConfig:
    """``model=default``: per-modality encoders.

    Attributes:
        embed_dim: Output dimension of every encoder (the representation size).
        encoders: Modality → registered encoder name; modalities not listed use the
            dataset's reference encoder if it names one (``info.encoders``, e.g.
            ``data=avmnist``: ``lenet``), else ``auto`` (chosen from the input's type and rank).
    """

    embed_dim: int = 128
    encoders: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        _check(self.embed_dim >= 1, "model.embed_dim", self.embed_dim, "an integer >= 1")
        from modalab.models.encoders import ENCODERS

        for modality, name in self.encoders.items():
            _check(
                name == "auto" or name in ENCODERS,
                f"model.encoders.{modality}",
                name,
                " | ".join(["auto", *ENCODERS.names()]),
            )


@dataclass
class TrainerConfig:
    """``trainer=default``: arguments of the Lightning Trainer and of the data loaders."""

    max_epochs: int = 20  # an upper bound: early stopping (trainer.early_stopping) ends sooner
    batch_size: int = 256
    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    # true: deterministic algorithms (an op without one raises); warn: they are used where
    # PyTorch has them and an op without one only warns (CUDA: e.g. some pooling backwards).
    deterministic: Any = True
    accumulate_grad_batches: int = 1
    gradient_clip_val: float | None = None
    log_every_n_steps: int = 5
    check_val_every_n_epoch: int = 1
    enable_progress_bar: bool = True
    threads: int = 0  # torch threads per process; 0: OMP_NUM_THREADS if set, else idle cores
    allocator: str = "reuse"  # reuse: keep freed memory (fast steps); system: C library defaults
    # Runs that differ only at test time (a test-time obstacle's severities) train once and
    # share the weights (experiments/shared.py); false: every run trains its own.
    share_training: bool = True
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    lr_schedule: LRSchedule = field(default_factory=LRSchedule)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        # 0: the encoders are evaluated as initialised (the random-encoder lower bound).
        _check(self.max_epochs >= 0, "trainer.max_epochs", self.max_epochs, "an integer >= 0")
        _check(self.threads >= 0, "trainer.threads", self.threads, "0 (auto) or an integer >= 1")
        _check(
            self.allocator in ALLOCATORS,
            "trainer.allocator",
            self.allocator,
            " or ".join(ALLOCATORS),
        )
        for node in (self.early_stopping, self.lr_schedule):
            try:
                node.validate()
            except ValueError as error:
                raise ValueError(f"trainer.{error}") from None
        _check(
            self.deterministic in (True, False, "warn"),
            "trainer.deterministic",
            self.deterministic,
            "true | false | warn",
        )
        _check(self.batch_size >= 2, "trainer.batch_size", self.batch_size, "an integer >= 2")
        _check(self.num_nodes >= 1, "trainer.num_nodes", self.num_nodes, "an integer >= 1")
        _check(
            self.accumulate_grad_batches >= 1,
            "trainer.accumulate_grad_batches",
            self.accumulate_grad_batches,
            "an integer >= 1",
        )
        _check(
            self.gradient_clip_val is None or self.gradient_clip_val > 0,
            "trainer.gradient_clip_val",
            self.gradient_clip_val,
            "null or a number > 0",
        )
        _check(
            self.log_every_n_steps >= 1,
            "trainer.log_every_n_steps",
            self.log_every_n_steps,
            "an integer >= 1",
        )
        _check(
            self.check_val_every_n_epoch >= 1,
            "trainer.check_val_every_n_epoch",
            self.check_val_every_n_epoch,
            "an integer >= 1",
        )
        accelerators = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")
        _check(
            self.accelerator in accelerators,
            "trainer.accelerator",
            self.accelerator,
            " | ".join(accelerators),
        )
        devices_ok = (
            self.devices == "auto"
            or (isinstance(self.devices, int) and (self.devices >= 1 or self.devices == -1))
            or (isinstance(self.devices, str) and self.devices.replace(",", "").isdigit())
            or (isinstance(self.devices, list | tuple) and len(self.devices) > 0)
        )
        _check(devices_ok, "trainer.devices", self.devices, "an integer >= 1, -1, auto or [ids]")
        _check(
            self.strategy in _STRATEGIES or self.strategy in _lightning_strategies(),
            "trainer.strategy",
            self.strategy,
            " | ".join(sorted(_STRATEGIES)) + " (or another Lightning strategy name)",
        )
        precisions = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
        _check(
            self.precision in precisions,
            "trainer.precision",
            self.precision,
            " | ".join(precisions),
        )


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
            {"scenario": "none"},
            {"eval": "default"},
            {"trainer": "default"},
        ]
    )
    data: Any = MISSING
    model: Any = MISSING
    method: Any = MISSING
    scenario: Any = MISSING  # scenario name → parameters, composed: scenario=[missing,blur]
    eval: Any = MISSING
    trainer: Any = MISSING
    seed: int = 0
    output_dir: str = "runs"  # parent folder of run directories
    run_name: str = ""  # run directory name; default: <time>-<data>-<method>-s<seed>
    resume: bool = False  # continue an interrupted run (needs run_name) from its last checkpoint
    store: str = ""  # results store folder the run appends its rows to ("" = none)
    study: str = ""  # study name recorded with the rows (set by `modalab sweep`)
    seed_data: bool = False  # data.seed follows seed (a study's seed_data: true); hashed as such
    severity_key: str = ""  # config key recorded as the severity; default: first scenario's
    # ("none": no severity: a study's reference run that brings a scenario of its own)
    scenario_label: str = ""  # the store's scenario column; default: the scenario names
    method_label: str = ""  # the store's method column; default: method.name
    data_label: str = ""  # the store's data column; default: data.name
    loggers: list[str] = field(default_factory=lambda: ["csv", "tensorboard"])  # + mlflow
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)


_STRATEGIES = {"auto", "ddp", "ddp_spawn", "ddp_notebook", "fsdp", "deepspeed", "single_device"}


def _lightning_strategies() -> list[str]:
    """Every strategy name Lightning registers (imported only for an uncommon name)."""
    from lightning.pytorch.strategies import StrategyRegistry

    return list(StrategyRegistry.available_strategies())


def _check(ok: bool, key: str, value: Any, valid: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r} is invalid: expected {valid}.")


_GROUPS = ("data", "model", "method", "eval", "trainer")
_REGISTERED = False


#: Hyperparameters that mean the same in every method: key → (valid?, what is valid).
_METHOD_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "lr": (lambda v: 0 < v < float("inf"), "a finite number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "temperature": (lambda v: v > 0, "a number > 0"),
    "proj_dim": (lambda v: v >= 1, "an integer >= 1"),
    "proj_hidden": (lambda v: v >= 0, "an integer >= 0"),
    "hidden": (lambda v: v >= 1, "an integer >= 1"),
}


def _validate_method(self: Any) -> None:
    """Raise ``ValueError`` naming a hyperparameter out of its range or choices."""
    for key, (ok, valid) in _METHOD_RANGES.items():
        if hasattr(self, key):
            _check(ok(getattr(self, key)), f"method.{key}", getattr(self, key), valid)
    for key, choices in self._choices.items():
        value = getattr(self, key)
        _check(value in choices, f"method.{key}", value, " | ".join(choices))


def method_config(entry: RegistryEntry[Any]) -> type:
    """The structured config of ``method=<name>``, generated from the builder's signature.

    The builder's keyword-only parameters are the hyperparameters: each becomes a field with
    the parameter's type and default (``Literal`` choices: a ``str`` checked by ``validate``;
    a tuple: a list). A keyword-only ``seed`` follows the run's seed (``${seed}``). The other
    parameters (encoder, number of classes, example batch, ...) are the runner's context.

    Args:
        entry: A :data:`~modalab.methods.METHODS` entry (a builder or a ``functools.partial``
            of one with other defaults: a variant).

    Returns:
        A dataclass with ``name`` and the hyperparameters, and a ``validate()`` method.
    """
    builder = entry.obj
    hints = typing.get_type_hints(builder.func if isinstance(builder, partial) else builder)
    fields: list[tuple[str, Any, Any]] = [("name", str, field(default=entry.name))]
    choices: dict[str, tuple[str, ...]] = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        kind, default = hints[param.name], param.default
        if typing.get_origin(kind) is Literal:
            choices[param.name] = typing.get_args(kind)
            kind = str
        if param.name == "seed":
            default = II("seed")
        if isinstance(default, tuple | list):
            kind = list[typing.get_args(kind)[0]]  # type: ignore[misc]
            default = field(default_factory=partial(list, default))
        else:
            default = field(default=default)
        fields.append((param.name, kind, default))
    cls = make_dataclass(
        f"{_title(entry.name)}MethodConfig",
        fields,
        namespace={"validate": _validate_method, "_choices": choices},
    )
    cls.__doc__ = f"``method={entry.name}``: {entry.description}"
    return _importable(cls)


def data_config(entry: RegistryEntry[Any]) -> type:
    """The structured config of ``data=<name>``: the registered config, ``name`` defaulting to it.

    Args:
        entry: A :data:`~modalab.data.DATASETS` entry registered with ``config=``.
    """
    config = entry.config
    names = {f.name: f.default for f in getattr(config, "__dataclass_fields__", {}).values()}
    if names.get("name") == entry.name:
        return config  # type: ignore[no-any-return]
    cls = make_dataclass(
        f"{_title(entry.name)}DataConfig",
        [("name", str, field(default=entry.name))],
        bases=(config,),
    )
    cls.__doc__ = f"``data={entry.name}``: {entry.description}"
    return _importable(cls)


def _title(name: str) -> str:
    """``supervised_robust`` → ``SupervisedRobust`` (generated class names)."""
    return "".join(part.title() for part in name.split("_"))


def _importable(cls: type) -> type:
    """Give a generated class a module-level name, so that a composed config pickles."""
    cls.__module__ = __name__
    cls.__qualname__ = cls.__name__
    setattr(sys.modules[__name__], cls.__name__, cls)
    return cls


def register_configs() -> None:
    """Register every config group option in Hydra's ConfigStore (idempotent).

    Datasets, methods and scenarios are read from their registries: a dataset's registered
    ``config``, a method's config generated from its builder (:func:`method_config`), a
    scenario class (its own structured config).
    """
    global _REGISTERED
    if _REGISTERED:
        return
    cs = ConfigStore.instance()
    cs.store(name="config", node=RunConfig)
    for dataset in DATASETS.entries():
        cs.store(group="data", name=dataset.name, node=data_config(dataset))
    for method in METHODS.entries():
        cs.store(group="method", name=method.name, node=method_config(method))
    cs.store(group="model", name="default", node=ModelConfig)
    cs.store(group="scenario", name="none", node={})
    for entry in SCENARIOS.entries():  # each scenario class is its own structured config
        cs.store(
            group="scenario", name=entry.name, node=entry.obj, package=f"scenario.{entry.name}"
        )
    cs.store(group="eval", name="default", node=EvalConfig)
    cs.store(group="trainer", name="default", node=TrainerConfig)
    _REGISTERED = True


def group_options(group: str) -> list[str]:
    """Names of the registered options of a config group."""
    register_configs()
    repo = ConfigStore.instance().repo.get(group, {})
    return sorted(name.removesuffix(".yaml") for name in repo)


def _valid_keys_hint(message: str, overrides: Sequence[str]) -> str:
    """For an unknown key, list the keys valid at that level of the config."""
    match = re.search(r"full_key: (\S+)", message)
    if not match or "not in" not in message:
        return ""
    parent = match.group(1).rsplit(".", 1)[0] if "." in match.group(1) else ""
    groups = [o for o in overrides if "=" in o and "." not in o.split("=", 1)[0]]
    try:
        with initialize_config_module(config_module="modalab.conf", version_base="1.3"):
            default = compose(config_name="config", overrides=groups)
    except Exception:  # the hint is best effort; the original error is still raised
        return ""
    node = OmegaConf.select(default, parent) if parent else default
    if not isinstance(node, DictConfig):
        return ""
    keys = ", ".join(str(k) for k in node.keys() if k != "defaults")
    return f"\nValid keys of {parent or 'the root config'}: {keys}."


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
        message = _explain(error)
        raise ConfigError(message + _valid_keys_hint(message, overrides)) from None
    OmegaConf.set_struct(cfg, True)
    from modalab.experiments.config_checks import check_added_keys

    check_added_keys(cfg, overrides)  # +trainer.max_epoch=3 is a typo, not a new field
    validate_config(cfg)
    return cfg


def validate_config(cfg: DictConfig) -> None:
    """Check the value ranges of every group (each option's ``validate()``), before training.

    Raises:
        ConfigError: Naming the key, the value and what is valid.
    """
    from modalab.experiments.config_checks import check_cross_keys, check_finite

    check_finite(cfg)  # NaN/inf anywhere, named by key, before any group's own checks
    if cfg.get("seed", 0) < 0:
        raise ConfigError(f"seed={cfg.seed} is invalid: expected an integer >= 0.")
    data_seed = OmegaConf.select(cfg, "data.seed", default=None)
    if cfg.get("seed_data", False) and data_seed != cfg.seed:
        raise ConfigError(
            f"seed_data=true but data.seed={data_seed} differs from seed={cfg.seed}: add "
            "data.seed=${seed} (a study's `seed_data: true` does), or drop seed_data."
        )
    try:
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as error:
        raise ConfigError(_explain(error)) from None
    except ValueError as error:  # a structured config's own check (e.g. a scenario's)
        raise ConfigError(str(error)) from None
    for group in _GROUPS:
        node = getattr(obj, group, None)
        check = getattr(node, "validate", None)
        if callable(check):
            try:
                check()
            except ValueError as error:
                message = str(error)
                if not message.startswith(f"{group}."):
                    message = f"{group}: {message}"
                raise ConfigError(message) from None
    _check_scenario_modalities(cfg)
    check_cross_keys(cfg)


def _check_scenario_modalities(cfg: DictConfig) -> None:
    """Scenario modalities the data does not have, where the data config names its modalities.

    Datasets whose modalities are fixed by their files are checked when the scenarios are bound
    to the built data (still before training).
    """
    known = cfg.get("data", {}).get("modalities")
    for name, node in (cfg.get("scenario") or {}).items():
        wanted = node.get("modalities") if node is not None else None
        unknown = [m for m in (wanted or []) if known is not None and m not in known]
        if unknown:
            raise ConfigError(
                f"scenario.{name}.modalities={list(wanted or [])} names {unknown}, which the data "
                f"does not have; data.modalities={list(known)}."
            )


def _explain(error: Exception) -> str:
    message = str(error)
    cause = error.__cause__
    if cause is not None and str(cause) not in message:
        message = f"{message}\n{cause}"
    for group in ("data", "model", "method", "scenario", "eval", "trainer"):
        if any(h in message for h in (f"'{group}'", f"{group}=", f"group {group}", f"'{group}/")):
            message += f"\nValid options for {group}=: {', '.join(group_options(group))}."
            break
    if "model.encoders." in message and "not in struct" in message:
        message += (
            "\nmodel.encoders is empty by default: choose an encoder with a leading '+', e.g. "
            "+model.encoders.image=cnn2d (see `modalab list encoders`)."
        )
    return message + "\nRun `modalab run --cfg` to print the full default config."
