"""The run directory: its file names, and a finished run rebuilt from it.

``modalab run`` writes one directory per run::

    RUN_DIR/
      config.yaml         the resolved config (the run's identity; written first)
      data_dir.json       the data folder the run read (datasets that read files)
      checkpoints/        Lightning checkpoints (last.ckpt, best-epochNNN.ckpt)
      logs/               CSV and TensorBoard logs
      model.safetensors   the evaluated weights (tensors only: loading runs no code)
      model.json          the config and torch version beside them
      failure.json        why the run stopped, while it is unfinished
      metrics.csv         one row per metric
      metrics.json        the metrics, written last: its presence marks a finished run

Everything that reads a run back — distillation teachers (``method.teacher_run``), the
``counterfactual`` command and the report's embedding maps — goes through :func:`load_run`,
which rebuilds the data, encoders and method from ``config.yaml`` with the composition root
(:mod:`modalab.experiments.build`) and loads the trained weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from modalab.data.files import resolve_data_dir
from modalab.data.tensor_dataset import Splits
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.errors import ConfigError
from modalab.experiments.io import atomic_write_text, load_yaml
from modalab.models.multimodal import MultimodalEncoder

__all__ = [
    "CHECKPOINTS_DIR",
    "CONFIG_FILE",
    "DATA_DIR_FILE",
    "FAILURE_FILE",
    "METRICS_CSV_FILE",
    "METRICS_FILE",
    "WEIGHTS_FILE",
    "LoadedRun",
    "evaluated_checkpoint",
    "load_encoder",
    "load_run",
    "load_teacher",
    "load_weights",
    "record_data_dir",
    "save_weights",
    "unfinished_reason",
    "with_recorded_data_dir",
    "write_failure",
]

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
METRICS_CSV_FILE = "metrics.csv"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INFO_FILE = "model.json"
FAILURE_FILE = "failure.json"
#: File holding ``{"data_dir": "<resolved folder>"}``.
DATA_DIR_FILE = "data_dir.json"
CHECKPOINTS_DIR = "checkpoints"
#: The checkpoint a run that predates ``training.evaluated_path`` evaluated.
LAST_CHECKPOINT = f"{CHECKPOINTS_DIR}/last.ckpt"


def write_failure(run_dir: Path, message: str) -> None:
    """Write ``failure.json`` (``{"error": message}``): why the run stopped."""
    atomic_write_text(run_dir / FAILURE_FILE, json.dumps({"error": message}, indent=2))


def unfinished_reason(run_dir: str | Path) -> str:
    """Why ``run_dir`` is not a finished run (empty when it is, or is no run directory).

    Args:
        run_dir: A directory written by ``modalab run``.

    Returns:
        ``""`` for a finished run (``metrics.json`` written); else what its ``failure.json``
        says, or that it has no ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file() or (run_dir / METRICS_FILE).is_file():
        return ""
    failure = run_dir / FAILURE_FILE
    if failure.is_file():
        try:
            return str(json.loads(failure.read_text()).get("error", FAILURE_FILE))
        except (ValueError, AttributeError):
            return f"{FAILURE_FILE} is unreadable"
    return f"no {METRICS_FILE}: interrupted, still running or failed"


def evaluated_checkpoint(run_dir: str | Path) -> str:
    """The checkpoint a finished run evaluated, relative to ``run_dir``.

    ``training.evaluated_path`` of its ``metrics.json``; ``checkpoints/last.ckpt`` for runs
    that predate it or have not finished.
    """
    metrics = Path(run_dir) / METRICS_FILE
    if metrics.is_file():
        path = json.loads(metrics.read_text()).get("training", {}).get("evaluated_path")
        if path:
            return str(path)
    return LAST_CHECKPOINT


def record_data_dir(run_dir: Path, data_cfg: Mapping[str, Any]) -> Path | None:
    """Write the resolved data folder of a dataset that reads files (``data.data_dir`` key).

    A run's ``config.yaml`` keeps ``data.data_dir`` as given (often empty:
    ``$MODALAB_DATA``), because the config is the run's identity and a path is not part of
    what it computes; the folder it resolved to goes to ``data_dir.json``, so that a run is
    rebuilt without ``MODALAB_DATA`` being set again.

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


def save_weights(model: nn.Module, run_dir: str | Path, config_yaml: str) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``run_dir`` (atomically).

    Args:
        model: The trained module.
        run_dir: The run directory.
        config_yaml: The resolved config as YAML text.

    Returns:
        The path of the safetensors file.
    """
    run_dir = Path(run_dir)
    target = run_dir / WEIGHTS_FILE
    tmp = run_dir / f".{WEIGHTS_FILE}.tmp"
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(target)
    atomic_write_text(
        run_dir / WEIGHTS_INFO_FILE,
        json.dumps({"config_yaml": config_yaml, "torch": torch.__version__}, indent=2),
    )
    return target


def load_weights(model: nn.Module, run_dir: str | Path, strict: bool = True) -> nn.Module:
    """Load ``model.safetensors`` of a run into ``model`` (no pickle involved)."""
    path = Path(run_dir) / WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: the run did not finish training. Resume it with "
            "`modalab run ... run_name=<name> resume=true`."
        )
    model.load_state_dict(load_file(str(path)), strict=strict)
    return model


@dataclass
class LoadedRun:
    """A run rebuilt from its directory.

    Attributes:
        run_dir: The run directory.
        config: The resolved config of the run.
        splits: The data, regenerated from the config (scenarios not applied: they are
            re-applied per stage with :func:`~modalab.scenarios.apply_scenarios`).
        method: The trained method (LightningModule) with the run's weights, in eval mode.
    """

    run_dir: Path
    config: dict[str, Any]
    splits: Splits
    method: L.LightningModule

    @property
    def embed_dim(self) -> int:
        """The run's ``model.embed_dim``."""
        return int(self.config["model"]["embed_dim"])

    def encoder(self, modality: str | None = None) -> nn.Module:
        """The method's trained encoder of ``modality``; ``None``: all of them.

        Raises:
            ConfigError: If the method has no per-modality encoders
                (:class:`~modalab.models.multimodal.MultimodalEncoder`), or none for ``modality``.
        """
        encoder = getattr(self.method, "encoder", None)
        if not isinstance(encoder, MultimodalEncoder):
            raise ConfigError(
                f"The method {self.config['method']['name']!r} of {self.run_dir} has no "
                "per-modality encoders."
            )
        if modality is None:
            return encoder
        if modality not in encoder.modalities:
            raise ConfigError(
                f"The run {self.run_dir} has no {modality!r} encoder; its modalities are "
                f"{list(encoder.modalities)}."
            )
        module: nn.Module = encoder.encoders[modality]
        return module


def load_run(run_dir: str | Path, checkpoint: str = "", reseed: bool = True) -> LoadedRun:
    """Rebuild a run's data and trained method from its directory.

    The data, encoders and method are built from the run's ``config.yaml`` (with the data
    folder it recorded, and the global seed set to the run's seed as when it trained); the
    weights are its ``model.safetensors`` (the evaluated weights, no pickle), or a Lightning
    checkpoint, loaded with ``weights_only=True``.

    Args:
        run_dir: A directory written by ``modalab run``.
        checkpoint: Checkpoint path relative to ``run_dir``. Empty: ``model.safetensors``
            when the run wrote it, else the checkpoint it evaluated
            (:func:`evaluated_checkpoint`).
        reseed: Set the global seed to the run's before building, as when it trained. False:
            draw from the caller's random state (a teacher built inside another run's build).

    Returns:
        The loaded run, its method in eval mode.

    Raises:
        ConfigError: If the directory lacks the config or the weights, or they do not match.
    """
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not checkpoint and (run_dir / WEIGHTS_FILE).is_file():
        weights_path, what = run_dir / WEIGHTS_FILE, "trained weights"
    else:
        weights_path, what = run_dir / (checkpoint or evaluated_checkpoint(run_dir)), "checkpoint"
    for path, needed in ((config_path, CONFIG_FILE), (weights_path, what)):
        if not path.is_file():
            raise ConfigError(
                f"{path} does not exist: {run_dir} is not a finished run directory written by "
                f"`modalab run` (it needs the {needed})."
            )
    config = load_yaml(config_path)
    seed = int(config["seed"])
    if reseed:
        L.seed_everything(seed, workers=True, verbose=False)
    splits = build_data(with_recorded_data_dir(run_dir, config["data"]))
    if reseed:
        L.seed_everything(seed, workers=True, verbose=False)
    encoder = build_encoders(config["model"], splits)
    method = build_method(
        config["method"],
        encoder,
        splits,
        int(config["model"]["embed_dim"]),
        seed=seed,
        load_teacher=load_teacher,
    )
    if weights_path.suffix == ".safetensors":
        state = load_file(str(weights_path))
    else:
        state = torch.load(weights_path, map_location="cpu", weights_only=True).get("state_dict")
    try:
        method.load_state_dict(state)
    except (TypeError, RuntimeError) as error:
        raise ConfigError(
            f"The weights {weights_path} do not match the model rebuilt from {config_path}: {error}"
        ) from None
    return LoadedRun(run_dir, config, splits, method.eval())


def load_encoder(run_dir: str | Path, modality: str | None = None) -> nn.Module:
    """The trained encoders of a finished run, in eval mode (:meth:`LoadedRun.encoder`).

    Args:
        run_dir: A finished run directory.
        modality: One modality's encoder; ``None``: the
            :class:`~modalab.models.multimodal.MultimodalEncoder` of all of them.

    Returns:
        The encoder (its outputs have the run's ``model.embed_dim`` features).

    Raises:
        ConfigError: If the run cannot be loaded, or has no encoder for ``modality``.
    """
    return load_run(run_dir).encoder(modality)


def load_teacher(run_dir: str, modality: str) -> tuple[nn.Module, int]:
    """A distillation teacher: ``modality``'s trained encoder of a run, and its size.

    The :data:`~modalab.experiments.build.TeacherLoader` that the composition root hands to
    ``method=distill`` (``method.teacher_source=run method.teacher_run=<run dir>``). It is
    loaded inside the student run's build, so it does not reseed: the student's own
    initialisation keeps following the student run's seed.
    """
    try:
        loaded = load_run(run_dir, reseed=False)
        teacher = loaded.encoder(modality)
    except ConfigError as error:
        raise ConfigError(f"method.teacher_run={run_dir}: {error}") from None
    # In train mode like every module handed to Lightning's fit (it warns about eval-mode
    # ones); the distillation method keeps its frozen teacher in eval mode itself.
    return teacher.train(), loaded.embed_dim
