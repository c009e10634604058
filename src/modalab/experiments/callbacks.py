"""Lightning callbacks for reliable runs: non-finite detection and RNG state in checkpoints."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch

from modalab.methods.common import NonFiniteError

__all__ = ["FiniteGuard", "NonFiniteError", "RNGStateCheckpoint"]


class FiniteGuard(L.Callback):
    """Stop training before a non-finite gradient reaches the weights.

    A non-finite training loss is refused by every recipe's step
    (:class:`~modalab.methods.common.LossStepMethod`). This check runs after the backward pass
    and *before* the optimizer step, so the weights saved in the last checkpoint stay the last
    good ones. The run then fails with a
    :class:`NonFiniteError` naming the epoch, the step and the offending parameters.
    """

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Refuse the step if any gradient is NaN or infinite."""
        bad = [
            name
            for name, p in pl_module.named_parameters()
            if p.grad is not None and not bool(torch.isfinite(p.grad).all())
        ]
        if bad:
            logged = trainer.callback_metrics.get("train/loss")
            loss = float(logged) if logged is not None else math.nan
            raise NonFiniteError(
                f"Non-finite gradients at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step} in {len(bad)} parameters (first: {bad[:3]}); last "
                f"logged training loss {loss}."
            )


class RNGStateCheckpoint(L.Callback):
    """Save and restore the torch RNG state with each checkpoint.

    modalab draws all its randomness from torch generators; together with an epoch-seeded
    sampler this makes a resumed CPU run continue bit for bit as the uninterrupted run would.
    """

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Store the torch RNG state (a tensor: loadable with weights_only)."""
        checkpoint["modalab_rng"] = {"torch": torch.get_rng_state()}

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Restore the state saved by :meth:`on_save_checkpoint`."""
        state = checkpoint.get("modalab_rng")
        if state is not None:
            torch.set_rng_state(state["torch"])
