"""The composition root: data, encoders, method and scenarios built from a run's config.

Every entry point that turns a config into objects goes through here: the runner (a new run),
:mod:`modalab.experiments.rundir` (a finished run rebuilt from its ``config.yaml``), the tests.
Configuration mistakes come out as :class:`~modalab.experiments.errors.ConfigError`; a bad
data file stays a data error.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning as L
from torch import nn

from modalab.data.files import CorruptDataError
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, Splits
from modalab.experiments.errors import ConfigError, DataError
from modalab.methods.registry import METHODS
from modalab.models.encoders import build_encoder
from modalab.models.multimodal import MultimodalEncoder
from modalab.scenarios import Scenario, build_scenarios

__all__ = [
    "TeacherLoader",
    "build_data",
    "build_encoders",
    "build_method",
    "build_run_scenarios",
    "encoder_choices",
]

#: ``(run directory, modality) -> (trained encoder of that modality, its embedding size)``:
#: how a method builder that declares ``load_teacher`` reads a teacher from a finished run
#: (:func:`modalab.experiments.rundir.load_teacher`).
TeacherLoader = Callable[[str, str], tuple[nn.Module, int]]


def _call_with_config(
    builder: Callable[..., Any], kwargs: Mapping[str, Any], where: str, **extra: Any
) -> Any:
    """Call a builder with config kwargs (struct mode checked the keys), errors as ConfigError."""
    try:
        return builder(**extra, **kwargs)
    except (CorruptDataError, DataError):
        raise  # a bad file is a data error (exit 3), not a configuration error
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


def encoder_choices(
    model_cfg: Mapping[str, Any], data_info: DataInfo, modalities: Sequence[str]
) -> dict[str, str]:
    """The encoder name of each modality: ``model.encoders``, else the dataset's, else ``auto``.

    A dataset names its reference encoders in ``info.encoders`` (``data=avmnist``'s default
    protocol: MultiBench's LeNets, ``data.reference_encoders=true``); an explicit
    ``model.encoders.<modality>`` always wins.
    """
    chosen = dict(model_cfg.get("encoders", {}))
    reference = dict(data_info.encoders or {})
    return {m: str(chosen.get(m, reference.get(m, "auto"))) for m in modalities}


def build_encoders(model_cfg: Mapping[str, Any], splits: Splits) -> MultimodalEncoder:
    """Per-modality encoders for the modalities of ``splits`` (see :func:`encoder_choices`)."""
    unknown = sorted(set(model_cfg.get("encoders", {})) - set(splits.modalities))
    if unknown:
        raise ConfigError(
            f"model.encoders names modalities {unknown} that the dataset does not have; "
            f"its modalities are {list(splits.modalities)}."
        )
    choices = encoder_choices(model_cfg, splits.info, splits.modalities)
    example = splits.train.__getitems__([0, 1])
    encoders = nn.ModuleDict()
    for modality in splits.modalities:
        try:
            encoders[modality] = build_encoder(
                choices[modality],
                example.inputs[modality],
                int(model_cfg["embed_dim"]),
                vocab_size=splits.info.vocab_size,
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
    load_teacher: TeacherLoader | None = None,
) -> L.LightningModule:
    """Build the method recipe named by ``method_cfg["name"]``.

    Builders that declare the parameters ``example`` (a two-sample training batch),
    ``data_info`` (the dataset's :class:`~modalab.data.DataInfo`, e.g. ``vocab_size``), ``seed``
    (the run's seed, for their own random state) or ``load_teacher`` (a :data:`TeacherLoader`, for
    teachers from finished runs) receive them.
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
        "data_info": lambda: splits.info,
        "seed": lambda: seed,
        "load_teacher": lambda: load_teacher,
    }
    extra = {k: make() for k, make in context.items() if k in params and k not in kwargs}
    return _call_with_config(  # type: ignore[no-any-return]
        builder,
        kwargs,
        f"method ({name})",
        encoder=encoder,
        num_classes=splits.num_classes,
        embed_dim=embed_dim,
        **extra,
    )


def build_run_scenarios(scenario_cfg: Mapping[str, Any] | None, splits: Splits) -> list[Scenario]:
    """The run's scenarios, in composition order, bound to the data's info."""
    try:
        return build_scenarios(dict(scenario_cfg or {}), splits.info)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"Invalid scenario: {error}") from error
