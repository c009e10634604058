"""The objective registry: name → loss module class."""

from __future__ import annotations

from typing import Any

from modalab.registry import Registry

__all__ = ["OBJECTIVES"]

#: Loss modules (``nn.Module`` classes) by name.
OBJECTIVES: Registry[Any] = Registry("objective")
