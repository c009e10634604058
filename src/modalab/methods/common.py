"""Pieces shared by method recipes: the optimizer, term logging, and a one-loss step base."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch

__all__ = ["LossStepMethod", "StepLoss", "adamw_with_cosine", "log_terms"]


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


class StepLoss(Protocol):
    """What :meth:`LossStepMethod.compute_loss` returns: a total and named terms."""

    loss: Tensor
    terms: dict[str, Tensor]


class LossStepMethod(L.LightningModule):
    """Base of recipes whose training and validation steps are one loss on the batch.

    A subclass sets ``lr`` and ``weight_decay`` and implements :meth:`compute_loss`; this
    class logs ``{stage}/loss`` (progress bar, synchronised across processes) and every term
    of the returned loss output as ``{stage}/{term}``, and
    optimises :meth:`optimized_parameters` with AdamW and a per-step cosine decay.
    """

    lr: float
    weight_decay: float

    def compute_loss(self, batch: MultimodalBatch) -> StepLoss:
        """The objective on one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss.")

    def step_loss(self, batch: MultimodalBatch, stage: str) -> StepLoss:
        """The loss of a ``train`` or ``val`` step (:meth:`compute_loss` by default)."""
        return self.compute_loss(batch)

    def logged_terms(self, out: StepLoss) -> dict[str, Tensor]:
        """The terms logged as ``{stage}/{term}`` (all by default)."""
        return out.terms

    def log_extra(self, stage: str, batch_size: int) -> None:
        """Log recipe-specific scalars after the loss (nothing by default)."""

    def _step(self, batch: MultimodalBatch, stage: str) -> Tensor:
        out = self.step_loss(batch, stage)
        size = batch.batch_size
        self.log(
            f"{stage}/loss",
            out.loss.detach(),
            batch_size=size,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
        log_terms(self, stage, self.logged_terms(out), size)
        self.log_extra(stage, size)
        return out.loss

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        """One optimisation step's loss."""
        return self._step(batch, "train")

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        """Validation loss."""
        return self._step(batch, "val")

    def optimized_parameters(self) -> Iterable[nn.Parameter]:
        """The parameters the optimizer updates (all by default)."""
        return self.parameters()

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW + cosine decay over :meth:`optimized_parameters`."""
        return adamw_with_cosine(self, self.optimized_parameters(), self.lr, self.weight_decay)
