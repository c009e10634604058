"""Discovery: every registry of modalab, and a static snapshot of it for a fast command line.

:func:`registries` imports every module that registers components (torch, Lightning, MONAI,
scikit-learn: seconds). ``modalab list`` and ``modalab methods`` only need names and one-line
descriptions, so they read :data:`modalab._catalog_static.CATALOG`, a snapshot written by
``python -m modalab.catalog`` and kept equal to the live registries by
``tests/test_startup.py`` (regenerate it after adding a component).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from modalab.registry import Registry

__all__ = ["CONFIG_GROUPS", "live_catalog", "registries", "static_catalog", "write_static"]

#: Config groups shown by ``modalab list configs``.
CONFIG_GROUPS = ("data", "model", "method", "scenario", "eval", "trainer")

#: ``{"kinds": {kind: [[name, description], ...]}, "config_groups": {group: [option, ...]},
#: "method_keys": {method: [key, ...]}}``.
Catalog = dict[str, dict[str, list[Any]]]


def registries() -> dict[str, Registry[Any]]:
    """Kind → registry, after importing every module that registers components."""
    import modalab.counterfactual
    import modalab.data
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
    }


def live_catalog() -> Catalog:
    """The catalog read from the live registries and Hydra config store (imports everything)."""
    from hydra.core.config_store import ConfigStore

    from modalab.experiments.config import group_options, register_configs

    register_configs()
    kinds = {
        kind: [[entry.name, entry.description] for entry in registry.entries()]
        for kind, registry in registries().items()
    }
    groups = {group: group_options(group) for group in CONFIG_GROUPS}
    repo = ConfigStore.instance().repo.get("method", {})
    keys = {
        name: [str(k) for k in repo[f"{name}.yaml"].node if k != "name"]
        for name in groups["method"]
    }
    return {"kinds": kinds, "config_groups": groups, "method_keys": keys}


def static_catalog() -> Catalog:
    """The snapshot shipped with the package (no heavy import)."""
    from modalab._catalog_static import CATALOG

    return CATALOG


def write_static(path: Path | None = None) -> Path:
    """Write the live catalog as ``modalab/_catalog_static.py``.

    Args:
        path: Target file; the package's own by default.

    Returns:
        The file written.
    """
    import pprint

    from modalab.experiments.io import atomic_write_text

    path = path or Path(__file__).with_name("_catalog_static.py")
    text = (
        '"""Snapshot of modalab\'s registries; written by ``python -m modalab.catalog``."""\n\n'
        "from typing import Any\n\n"
        f"CATALOG: dict[str, dict[str, list[Any]]] = {pprint.pformat(live_catalog(), width=96)}\n"
    )
    atomic_write_text(path, text)
    return path


if __name__ == "__main__":  # pragma: no cover - maintenance command
    print(f"wrote {write_static(Path(sys.argv[1]) if len(sys.argv) > 1 else None)}")
