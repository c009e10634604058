"""The data folder a run actually read, recorded beside its config.

A run's ``config.yaml`` keeps ``data.data_dir`` as given (often empty: ``$MODALAB_DATA``),
because the config is the run's identity and a path is not part of what it computes. The
folder it resolved to is written to ``data_dir.json`` in the run directory, so that
``modalab counterfactual`` and ``modalab report`` rebuild the data of an AV-MNIST or
PneumoniaMNIST run without ``MODALAB_DATA`` being set again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modalab.data.files import resolve_data_dir
from modalab.experiments.io import atomic_write_text

__all__ = ["DATA_DIR_FILE", "record_data_dir", "with_recorded_data_dir"]

#: File in a run directory holding ``{"data_dir": "<resolved folder>"}``.
DATA_DIR_FILE = "data_dir.json"


def record_data_dir(run_dir: Path, data_cfg: Mapping[str, Any]) -> Path | None:
    """Write the resolved data folder of a dataset that reads files (``data.data_dir`` key).

    Args:
        run_dir: The run directory.
        data_cfg: The run's ``data`` config.

    Returns:
        The folder recorded, or None for embedded datasets (no ``data_dir`` key).
    """
    if "data_dir" not in data_cfg:
        return None
    folder = resolve_data_dir(str(data_cfg["data_dir"] or "")).resolve()
    atomic_write_text(run_dir / DATA_DIR_FILE, json.dumps({"data_dir": str(folder)}) + "\n")
    return folder


def with_recorded_data_dir(run_dir: Path, data_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``data_cfg`` with an empty ``data_dir`` replaced by the folder the run recorded.

    An explicit ``data_dir`` in the config is kept; a recorded folder that no longer exists
    is ignored (``$MODALAB_DATA`` then applies, as for a new run).

    Args:
        run_dir: The run directory.
        data_cfg: The ``data`` config read from its ``config.yaml``.

    Returns:
        A copy of the data config.
    """
    out = dict(data_cfg)
    path = Path(run_dir) / DATA_DIR_FILE
    if "data_dir" in out and not out["data_dir"] and path.is_file():
        folder = Path(json.loads(path.read_text())["data_dir"])
        if folder.is_dir():
            out["data_dir"] = str(folder)
    return out
