"""Lightning checkpoints: written atomically, loaded with guards.

Lightning's ``.ckpt`` files (pickles) are only ever loaded with
``torch.load(weights_only=True)``; a file that needs arbitrary unpickling is refused unless the
caller says it is trusted. A finished run's evaluated weights are ``model.safetensors``
(:func:`modalab.experiments.rundir.save_weights`).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from modalab.experiments.io import atomic_write_bytes

__all__ = [
    "AtomicCheckpointIO",
    "UntrustedCheckpointError",
    "load_checkpoint",
]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written beside their target, fsynced, then renamed over it.

    Lightning's default writes a temporary file in the system's temporary folder and moves it;
    when that folder is on another file system the move is a copy, and a kill during the copy
    leaves a truncated ``last.ckpt``. Here the rename is always within the checkpoint folder,
    so a reader (and ``resume=true``) sees the previous checkpoint or the new one, never half.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any = None
    ) -> None:
        """``torch.save`` into memory, then :func:`~modalab.experiments.io.atomic_write_bytes`."""
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not take storage_options.")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


class UntrustedCheckpointError(RuntimeError):
    """A pickle checkpoint needs arbitrary code execution to load and was not trusted."""


def load_checkpoint(path: str | Path, trusted: bool = False) -> dict[str, Any]:
    """Load a Lightning/PyTorch checkpoint safely.

    Args:
        path: The ``.ckpt``/``.pt`` file.
        trusted: Allow full unpickling if the weights-only loader refuses the file. Only for
            files you produced yourself: unpickling can execute arbitrary code.

    Returns:
        The checkpoint dictionary.

    Raises:
        UntrustedCheckpointError: If the file needs full unpickling and ``trusted`` is False.
    """
    try:
        data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
        return data
    except Exception as error:  # the weights-only unpickler raises UnpicklingError/others
        if not trusted:
            raise UntrustedCheckpointError(
                f"{path} cannot be loaded with weights_only=True ({type(error).__name__}: "
                f"{str(error).splitlines()[0]}). It may contain arbitrary code; load it only if "
                "you produced it, with load_checkpoint(path, trusted=True)."
            ) from None
    data = torch.load(path, map_location="cpu", weights_only=False)
    return data


def intact_checkpoint(folder: str | Path) -> Path | None:
    """The newest checkpoint of ``folder`` that loads: ``last.ckpt``, else the newest other.

    A ``last.ckpt`` truncated by a full disk or a kill during a copy is skipped with a
    warning naming it and the checkpoint used instead (Lightning keeps an ``epoch=N``
    checkpoint beside it). Files are loaded with ``weights_only=True`` only.

    Returns:
        The checkpoint to resume from, or ``None`` when there is none that loads.
    """
    import warnings

    folder = Path(folder)
    if not folder.is_dir():
        return None
    last = folder / "last.ckpt"
    others = sorted(
        (p for p in folder.glob("*.ckpt") if p.name != "last.ckpt"),
        key=lambda p: p.stat().st_mtime_ns,
        reverse=True,
    )
    broken: list[str] = []
    for path in ([last] if last.exists() else []) + others:
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any failure to read means: not intact
            broken.append(f"{path.name} ({type(error).__name__}: {str(error).splitlines()[0]})")
            continue
        if broken:
            warnings.warn(
                f"Checkpoint(s) {', '.join(broken)} in {folder} do not load (truncated or "
                f"damaged); resuming from the intact {path.name} instead.",
                stacklevel=2,
            )
        return path
    if broken:
        warnings.warn(
            f"No checkpoint in {folder} loads ({', '.join(broken)}); the run starts over.",
            stacklevel=2,
        )
    return None
