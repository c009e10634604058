"""Teachers from finished runs: the rich modality's encoder of a run, loaded from its weights.

Importing this module registers the ``"run"`` loader in
:data:`modalab.methods.distill.TEACHER_LOADERS`, so that ``method=distill
method.teacher_source=run method.teacher_run=<run dir>`` works from the command line.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from modalab.experiments.checkpoint import load_weights
from modalab.experiments.io import load_yaml
from modalab.methods.distill import TEACHER_LOADERS
from modalab.models.multimodal import MultimodalEncoder

__all__ = ["load_run_encoder"]


@TEACHER_LOADERS.register("run")
def load_run_encoder(run_dir: str, modality: str) -> tuple[nn.Module, int]:
    """The trained encoder of ``modality`` from a finished run directory.

    The run's own config (``config.yaml``) rebuilds its data (for input shapes), encoders and
    method; ``model.safetensors`` fills in the weights (no pickle is loaded).

    Args:
        run_dir: A finished run directory (holding ``config.yaml`` and ``model.safetensors``).
        modality: The modality whose encoder is wanted.

    Returns:
        ``(encoder, embed_dim)``.

    Raises:
        FileNotFoundError: If the directory is not a finished run.
        ValueError: If the run has no encoder for ``modality``.
    """
    from modalab.experiments.runner import build_data, build_encoders, build_method

    path = Path(run_dir)
    if not (path / "config.yaml").exists():
        raise FileNotFoundError(
            f"{path} holds no config.yaml: method.teacher_run must be a modalab run directory."
        )
    cfg = load_yaml(path / "config.yaml")
    splits = build_data(cfg["data"])
    encoder = build_encoders(cfg["model"], splits)
    if modality not in encoder.modalities:
        raise ValueError(
            f"The teacher run {path} has no {modality!r} encoder; its modalities are "
            f"{list(encoder.modalities)}."
        )
    embed_dim = int(cfg["model"]["embed_dim"])
    method = build_method(cfg["method"], encoder, splits, embed_dim)
    load_weights(method, path)
    trained = getattr(method, "encoder", None)
    if not isinstance(trained, MultimodalEncoder):
        raise ValueError(
            f"The teacher run's method {cfg['method']['name']!r} has no per-modality encoders."
        )
    module: nn.Module = trained.encoders[modality]
    return module, embed_dim
