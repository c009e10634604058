"""Pieces shared by method recipes: the optimizer and its schedule, and the step base."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.output import LossOutput
from modalab.schedules import LRSchedule, lr_factor

__all__ = [
    "ClassifierMethod",
    "LRSchedule",
    "LossStepMethod",
    "NonFiniteError",
    "SelectionPlateau",
    "adamw_with_schedule",
]


def adamw_with_schedule(
    module: L.LightningModule,
    parameters: Iterable[nn.Parameter],
    lr: float,
    weight_decay: float,
    schedule: LRSchedule | None = None,
) -> OptimizerLRSchedulerConfig:
    """AdamW with the learning-rate schedule of ``schedule`` (or of ``module.lr_schedule``).

    The runner sets ``module.lr_schedule`` from ``trainer.lr_schedule``; a module used on its
    own gets the default :class:`LRSchedule`. Step-wise schedules count the Trainer's
    estimated optimizer steps of ``max_epochs`` epochs.

    Args:
        module: The LightningModule (its Trainer gives the number of steps).
        parameters: Parameters to optimise.
        lr: Peak learning rate.
        weight_decay: Decoupled weight decay.
        schedule: The schedule; default: ``module.lr_schedule`` if set, else ``LRSchedule()``.

    Returns:
        The optimizer/scheduler dictionary Lightning expects.
    """
    schedule = schedule or getattr(module, "lr_schedule", None) or LRSchedule()
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    trainer = module.trainer
    if schedule.name == "plateau":
        plateau = SelectionPlateau(
            optimizer,
            module,
            mode=schedule.mode,
            factor=schedule.plateau_factor,
            patience=schedule.plateau_patience,
        )
        scheduler: dict[str, Any] = {
            "scheduler": plateau,
            "interval": "epoch",
            "frequency": int(trainer.check_val_every_n_epoch or 1),
            "monitor": schedule.monitor,
        }
        return {"optimizer": optimizer, "lr_scheduler": scheduler}  # type: ignore[typeddict-item]
    total = max(1, int(trainer.estimated_stepping_batches))
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    warmup = round(schedule.warmup_epochs * total / epochs)
    decay = schedule.name == "cosine"

    def factor(step: int) -> float:
        return lr_factor(step, total, warmup, schedule.min_lr_ratio, decay)

    lambda_lr = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lambda_lr, "interval": "step"}}


class SelectionPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """ReduceLROnPlateau counting only the checks from the module's ``selection_start_epoch`` on.

    Like early stopping and the best checkpoint, it ignores earlier epochs: an earlier phase
    (distillation's teacher epochs) logs a loss of another quantity, and a student loss
    compared with it would look like a plateau from its first epoch.

    Args:
        optimizer: The optimizer whose rates it reduces.
        module: The LightningModule (its ``current_epoch`` and ``selection_start_epoch``); not
            part of the scheduler's state dict.
        **kwargs: Passed to ``ReduceLROnPlateau``.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, module: L.LightningModule, **kwargs: Any):
        super().__init__(optimizer, **kwargs)
        self._module = module

    def step(self, metrics: Any, epoch: int | None = None) -> None:  # type: ignore[override]
        """Count ``metrics`` unless the module is before its selection start."""
        module = self._module
        if int(module.current_epoch) < int(getattr(module, "selection_start_epoch", 0)):
            return
        super().step(metrics)

    def state_dict(self) -> dict[str, Any]:
        """ReduceLROnPlateau's state without the module."""
        state = super().state_dict()
        state.pop("_module", None)
        return state


class NonFiniteError(RuntimeError):
    """The loss or a gradient became NaN or infinite."""


class LossStepMethod(L.LightningModule):
    """The base of every recipe: training and validation steps are one loss on the batch.

    A subclass sets ``lr`` and ``weight_decay`` and implements :meth:`compute_loss` (or
    :meth:`step_loss`, when training and validation differ); this class logs ``{stage}/loss``
    (progress bar, synchronised across processes) and every term of the returned
    :class:`~modalab.objectives.output.LossOutput` as ``{stage}/{term}``, refuses a non-finite
    training loss (:class:`NonFiniteError`, before it reaches the weights), and optimises
    :meth:`optimized_parameters` with AdamW and the schedule of ``lr_schedule``
    (:func:`adamw_with_schedule`).
    """

    lr: float
    weight_decay: float
    lr_schedule: LRSchedule | None = None

    @property
    def selection_start_epoch(self) -> int:
        """The first epoch (from 0) whose validation metrics count (0 by default).

        From it on, they select the evaluated checkpoint and count for early stopping; earlier
        epochs optimise something else (distillation's teacher phase), whose validation loss
        is not comparable.
        """
        return 0

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """The objective on one batch."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss.")

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """The loss of a ``train`` or ``val`` step (:meth:`compute_loss` by default)."""
        return self.compute_loss(batch)

    def logged_terms(self, out: LossOutput) -> dict[str, Tensor]:
        """The terms logged as ``{stage}/{term}`` (all by default)."""
        return out.terms

    def log_extra(self, stage: str, batch_size: int) -> None:
        """Log recipe-specific scalars after the loss (nothing by default)."""

    def _step(self, batch: MultimodalBatch, stage: str) -> Tensor:
        out = self.step_loss(batch, stage)
        if stage == "train" and not bool(torch.isfinite(out.loss).all()):
            raise NonFiniteError(
                f"The training loss is {out.loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step}."
            )
        size = batch.batch_size
        for name, value in {"loss": out.loss, **self.logged_terms(out)}.items():
            self.log(
                f"{stage}/{name}",
                value.detach(),
                batch_size=size,
                prog_bar=name == "loss",
                on_step=False,
                on_epoch=True,
                sync_dist=True,
            )
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
        """AdamW + the learning-rate schedule over :meth:`optimized_parameters`."""
        return adamw_with_schedule(self, self.optimized_parameters(), self.lr, self.weight_decay)


class ClassifierMethod(LossStepMethod):
    """Base of recipes that train a classifier of embeddings and presence, not a joint space.

    A subclass has an ``encoder`` (:class:`~modalab.models.multimodal.MultimodalEncoder`) and
    implements :meth:`classify`, which makes it an
    :class:`~modalab.models.multimodal.EmbeddingClassifier`; :meth:`forward` and the
    evaluation interface follow.
    """

    encoder: MultimodalEncoder
    #: No joint space is trained: retrieval and alignment in it would mean nothing.
    trains_joint_space = False

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from per-modality encoder outputs and presence masks."""
        raise NotImplementedError(f"{type(self).__name__} must implement classify.")

    def forward(self, batch: MultimodalBatch) -> Tensor:
        """Class logits ``[B, C]`` of a batch, respecting its ``present`` masks."""
        return self.classify(self.encoder(batch.inputs), batch.present)

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs) of a batch."""
        return self.encoder(batch.inputs)

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """No joint space is trained: the representations themselves."""
        return representations
