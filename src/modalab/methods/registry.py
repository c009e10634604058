"""The method registry: name → builder of a LightningModule recipe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modalab.registry import Registry

__all__ = ["METHODS"]

#: Method builders ``(encoder, num_classes, **method_kwargs) -> LightningModule``; the
#: encoder is a :class:`~modalab.models.MultimodalEncoder` without projection heads.
METHODS: Registry[Callable[..., Any]] = Registry("method")
