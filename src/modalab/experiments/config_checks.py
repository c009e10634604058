"""Checks of a composed config that no single group's ``validate()`` sees.

* :func:`check_finite`: NaN anywhere, or an infinity where infinity means nothing, is an
  error naming the key (``data.noise.image=nan`` must not pass as "no noise").
* :func:`check_added_keys`: a ``+key=value`` override may only add an entry to an open
  dictionary (``+model.encoders.image=cnn``), never a field a structured config lacks
  (``+trainer.max_epoch=3`` is a typo of ``trainer.max_epochs``).
* :func:`check_cross_keys`: combinations known before the data is built (a cross-modal
  method with ``data.modalities`` of one modality; a phased method whose first phase takes
  every epoch).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from modalab.experiments.errors import ConfigError

__all__ = ["INFINITE_OK", "check_added_keys", "check_cross_keys", "check_finite"]

#: Leaf keys for which ``+inf`` is a meaningful value (a signal-to-noise ratio: clean data).
INFINITE_OK = ("snr_db",)


def _walk(node: Any, prefix: str) -> list[tuple[str, Any]]:
    if isinstance(node, DictConfig | ListConfig) and node._is_none():
        return [(prefix, None)]
    if isinstance(node, DictConfig):
        out = []
        for key in node.keys():
            if key == "defaults":
                continue
            child = node._get_node(key)  # no interpolation resolution needed for numbers
            value = child if isinstance(child, DictConfig | ListConfig) else node.get(key)
            name = str(key)
            out += _walk(value, f"{prefix}.{name}" if prefix else name)
        return out
    if isinstance(node, ListConfig):
        out = []
        for i, item in enumerate(node):
            out += _walk(item, f"{prefix}[{i}]")
        return out
    return [(prefix, node)]


def check_finite(cfg: DictConfig) -> None:
    """Every number finite (``+inf`` only for :data:`INFINITE_OK` keys).

    Raises:
        ConfigError: Naming the key and the value.

    Example:
        >>> check_finite(OmegaConf.create({"data": {"noise": {"image": float("nan")}}}))
        Traceback (most recent call last):
        ...
        modalab.experiments.errors.ConfigError: data.noise.image=nan is invalid: ...
    """
    for key, value in _walk(cfg, ""):
        if not isinstance(value, float) or math.isfinite(value):
            continue
        leaf = key.rsplit(".", 1)[-1].split("[")[0]
        if value == math.inf and leaf in INFINITE_OK:
            continue
        raise ConfigError(
            f"{key}={value} is invalid: expected a finite number"
            + (" (or +inf for no noise)." if leaf in INFINITE_OK else ".")
        )


def check_added_keys(cfg: DictConfig, overrides: Sequence[str]) -> None:
    """Refuse ``+key=value`` overrides that add a field a structured config does not have.

    Raises:
        ConfigError: Naming the key, the closest valid key and the valid keys.
    """
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        key = override.split("=", 1)[0].lstrip("+")
        if "." not in key:
            continue  # +group=option adds a config group
        parent_key, leaf = key.rsplit(".", 1)
        parent = OmegaConf.select(cfg, parent_key)
        if not isinstance(parent, DictConfig):
            continue
        schema = OmegaConf.get_type(parent)
        if schema is None or not dataclasses.is_dataclass(schema):
            continue  # an open dictionary (model.encoders, data.noise): adding is its purpose
        fields = [f.name for f in dataclasses.fields(schema)]
        if leaf in fields:
            continue
        close = difflib.get_close_matches(leaf, fields, n=1)
        hint = f" Did you mean {parent_key}.{close[0]}?" if close else ""
        raise ConfigError(
            f"{override!r} adds the key {key!r}, which {parent_key} does not have.{hint} "
            f"Valid keys of {parent_key}: {', '.join(fields)}. Set an existing key without "
            "'+' (e.g. trainer.max_epochs=3); '+' only adds entries to open dictionaries such "
            "as +model.encoders.image=cnn2d."
        )


def check_cross_keys(cfg: DictConfig) -> None:
    """Combinations that are wrong whatever the data files hold.

    Raises:
        ConfigError: A cross-modal method (CLIP, fusion, ...) with ``data.modalities`` of one
            modality; a phased method (``distill`` with its teacher phase, ``finetune``) whose
            first phase takes every epoch of ``trainer.max_epochs``.
    """
    from modalab.experiments.data_checks import CROSS_MODAL_METHODS

    method_cfg = cfg.get("method", {})
    max_epochs = cfg.get("trainer", {}).get("max_epochs")
    phases = {"distill": "teacher_epochs", "finetune": "pretrain_epochs"}
    key = phases.get(str(method_cfg.get("name", "")))
    first = method_cfg.get(key) if key else None
    uses_phase = key != "teacher_epochs" or method_cfg.get("teacher_source", "train") == "train"
    if first is not None and uses_phase and max_epochs is not None and 0 < max_epochs <= first:
        raise ConfigError(
            f"trainer.max_epochs={max_epochs} leaves no epoch after method.{key}={first}: "
            f"the first {first} epochs of method={method_cfg.get('name')} are its first phase. "
            f"Raise trainer.max_epochs (e.g. trainer.max_epochs={first + 10}) or lower "
            f"method.{key}."
        )

    modalities = cfg.get("data", {}).get("modalities")
    method = str(cfg.get("method", {}).get("name", ""))
    if modalities is not None and len(modalities) < 2 and method in CROSS_MODAL_METHODS:
        raise ConfigError(
            f"method={method} relates modalities to each other and needs at least two; "
            f"data.modalities={list(modalities)}. Add a modality (e.g. "
            "data.modalities=[image,text]) or use a single-modality method (simclr, byol, "
            "supervised, ...)."
        )
