"""Supervised late fusion: the baseline every self-supervised method is compared with."""

from __future__ import annotations

from typing import Literal

import lightning as L
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import adamw_with_schedule
from modalab.methods.registry import METHODS
from modalab.models.multimodal import (
    ConcatFusion,
    LateFusionClassifier,
    MeanFusion,
    MultimodalEncoder,
)
from modalab.objectives.supervised import masked_cross_entropy

__all__ = ["SupervisedFusionMethod", "build_supervised"]

_FUSIONS: dict[str, type[ConcatFusion] | type[MeanFusion]] = {
    "concat": ConcatFusion,
    "mean": MeanFusion,
}


class SupervisedFusionMethod(L.LightningModule):
    """Encoders → fusion of present modalities → head, trained with cross-entropy.

    Only samples whose label is observed contribute to the loss.

    Args:
        model: The late-fusion classifier.
        lr: Learning rate.
        weight_decay: Weight decay.
    """

    def __init__(self, model: LateFusionClassifier, lr: float, weight_decay: float) -> None:
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay

    @property
    def encoder(self) -> MultimodalEncoder:
        """The per-modality encoders."""
        return self.model.encoder

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs) of a batch."""
        return self.model.encoder(batch.inputs)

    #: No joint space is trained: retrieval and alignment in it would mean nothing.
    trains_joint_space = False

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """No joint space is trained: the representations themselves."""
        return representations

    def forward(self, batch: MultimodalBatch) -> Tensor:
        """Class logits ``[B, C]``."""
        return self.model(batch.inputs, batch.present)

    def _step(self, batch: MultimodalBatch, stage: str) -> Tensor:
        logits = self.forward(batch)
        loss = masked_cross_entropy(logits, batch.label, batch.label_observed)
        accuracy = (logits.argmax(1) == batch.clean_label).float().mean()
        size = batch.batch_size
        self.log(
            f"{stage}/loss",
            loss.detach(),
            batch_size=size,
            prog_bar=True,
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
        self.log(
            f"{stage}/acc",
            accuracy,
            batch_size=size,
            prog_bar=stage == "val",
            on_step=False,
            on_epoch=True,
            sync_dist=True,
        )
        return loss

    def training_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        """One supervised step."""
        return self._step(batch, "train")

    def validation_step(self, batch: MultimodalBatch, batch_idx: int) -> Tensor:
        """Validation loss and accuracy."""
        return self._step(batch, "val")

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        """AdamW + the learning-rate schedule (:func:`adamw_with_schedule`)."""
        return adamw_with_schedule(self, self.parameters(), self.lr, self.weight_decay)


@METHODS.register("supervised")
def build_supervised(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    *,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    fusion: Literal["concat", "mean"] = "concat",
    hidden: int = 128,
) -> SupervisedFusionMethod:
    """Supervised late fusion (concat or mean of present modalities) with an MLP head.

    Args:
        encoder: Per-modality encoders.
        num_classes: Number of classes of the head.
        embed_dim: Output size of the encoders.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        fusion: ``concat`` the modalities' embeddings or take the ``mean`` of the present ones.
        hidden: Hidden width of the classification head.
    """
    if fusion not in _FUSIONS:
        raise ValueError(f"method.fusion={fusion!r} is unknown; valid: {sorted(_FUSIONS)}.")
    fuse = _FUSIONS[fusion]()
    in_dim = fuse.output_dim(embed_dim, len(encoder.modalities))
    head = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    return SupervisedFusionMethod(LateFusionClassifier(encoder, fuse, head), lr, weight_decay)
