"""Discovery: every registry of modalab, populated by importing the modules that register."""

from __future__ import annotations

from typing import Any

from modalab.registry import Registry

__all__ = ["registries"]


def registries() -> dict[str, Registry[Any]]:
    """Kind → registry, after importing every module that registers components."""
    import modalab.counterfactual
    import modalab.data
    import modalab.experiments.teachers
    import modalab.methods
    import modalab.models
    import modalab.objectives
    import modalab.scenarios

    return {
        "datasets": modalab.data.DATASETS,
        "sources": modalab.data.SOURCES,
        "encoders": modalab.models.ENCODERS,
        "objectives": modalab.objectives.OBJECTIVES,
        "methods": modalab.methods.METHODS,
        "scenarios": modalab.scenarios.SCENARIOS,
        "interventions": modalab.counterfactual.INTERVENTIONS,
        "teacher_loaders": modalab.methods.TEACHER_LOADERS,
    }
