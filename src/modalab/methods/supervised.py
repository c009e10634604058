"""Supervised late fusion: the baseline every self-supervised method is compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import ClassifierMethod
from modalab.methods.registry import METHODS
from modalab.models.multimodal import (
    ConcatFusion,
    LateFusionClassifier,
    MeanFusion,
    MultimodalEncoder,
)
from modalab.objectives.output import LossOutput
from modalab.objectives.supervised import masked_cross_entropy

__all__ = ["SupervisedFusionMethod", "build_supervised"]

_FUSIONS: dict[str, type[ConcatFusion] | type[MeanFusion]] = {
    "concat": ConcatFusion,
    "mean": MeanFusion,
}


class SupervisedFusionMethod(ClassifierMethod):
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
    def encoder(self) -> MultimodalEncoder:  # type: ignore[override]  # read-only: model's
        """The per-modality encoders (those of ``model``; not a second copy in the state)."""
        return self.model.encoder

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from per-modality encoder outputs (fusion + head only)."""
        return self.model.classify(embeddings, present)

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """Cross-entropy over observed labels; accuracy against the clean labels (``acc``)."""
        logits = self.forward(batch)
        loss = masked_cross_entropy(logits, batch.label, batch.label_observed)
        accuracy = (logits.argmax(1) == batch.clean_label).float().mean()
        return LossOutput(loss, {"acc": accuracy}, {"ce": int(batch.label_observed.sum())})


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
        fusion: ``concat`` the modalities' embeddings or take the ``mean`` of the present ones.
        hidden: Hidden width of the classification head.
    """
    if fusion not in _FUSIONS:
        raise ValueError(f"method.fusion={fusion!r} is unknown; valid: {sorted(_FUSIONS)}.")
    fuse = _FUSIONS[fusion]()
    in_dim = fuse.output_dim(embed_dim, len(encoder.modalities))
    head = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    return SupervisedFusionMethod(LateFusionClassifier(encoder, fuse, head), lr, weight_decay)
