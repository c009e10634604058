"""The dataset registry: name → builder returning :class:`~modalab.data.Splits`."""

from __future__ import annotations

from collections.abc import Callable

from modalab.data.tensor_dataset import Splits
from modalab.registry import Registry

__all__ = ["DATASETS"]

#: Dataset builders, each ``(**kwargs) -> Splits``.
DATASETS: Registry[Callable[..., Splits]] = Registry("dataset")
