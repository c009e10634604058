"""The scenario registry: name → :class:`~modalab.scenarios.base.Scenario` subclass."""

from __future__ import annotations

from modalab.registry import Registry
from modalab.scenarios.base import Scenario

__all__ = ["SCENARIOS"]

#: Scenario classes; each is a dataclass of its parameters (and its own structured config).
SCENARIOS: Registry[type[Scenario]] = Registry("scenario")
