"""Small pieces shared by method recipes (not a base class: each recipe stays usable alone)."""

from __future__ import annotations

from collections.abc import Iterable

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import nn

__all__ = ["adamw_with_cosine", "log_terms"]


def adamw_with_cosine(
    module: L.LightningModule,
    parameters: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
) -> OptimizerLRSchedulerConfig:
    """AdamW with a per-step cosine decay over the Trainer's estimated number of steps.

    Args:
        module: The LightningModule (its Trainer gives the number of steps).
        parameters: Parameters to optimise.
        lr: Peak learning rate.
        weight_decay: Decoupled weight decay.

    Returns:
        The optimizer/scheduler dictionary Lightning expects.
    """
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    steps = max(1, int(module.trainer.estimated_stepping_batches))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
    }


def log_terms(
    module: L.LightningModule, prefix: str, terms: dict[str, torch.Tensor], batch_size: int
) -> None:
    """Log each named scalar as ``{prefix}/{name}``."""
    for name, value in terms.items():
        module.log(
            f"{prefix}/{name}",
            value.detach(),
            batch_size=batch_size,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
