"""Supervised late fusion made robust to missing modalities and wrong labels.

Composes, by configuration: modality dropout during training
(:func:`~modalab.methods.tricks.modality_dropout`), what stands in for an absent modality's
embedding (zeros, a learned absent embedding, or an imputation from the present modalities
trained jointly), and the classification loss (cross-entropy, GCE or SCE).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import ClassifierMethod
from modalab.methods.registry import METHODS
from modalab.methods.tricks import modality_dropout
from modalab.models.missing import AbsentEmbeddings, EmbeddingImputer, fill_missing
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.imputation import imputation_loss
from modalab.objectives.output import LossOutput
from modalab.objectives.robust import generalized_cross_entropy, symmetric_cross_entropy
from modalab.objectives.supervised import masked_cross_entropy

__all__ = ["FILL_MODES", "LABEL_LOSSES", "RobustFusionMethod", "build_supervised_robust"]

FILL_MODES = ("zero", "absent", "impute")
LABEL_LOSSES = ("ce", "gce", "sce")


class RobustFusionMethod(ClassifierMethod):
    """Encoders → (dropout, fill of absent modalities) → concat + presence flags → MLP head.

    Args:
        encoder: Per-modality encoders.
        num_classes: Number of classes.
        embed_dim: Encoder output dimension.
        fill: ``"zero"`` (absent rows zeroed), ``"absent"`` (learned absent embedding) or
            ``"impute"`` (predicted from the present modalities; absent embedding where no
            source is present).
        dropout_rate: Modality dropout probability during training.
        imputation_weight: Weight of the imputation loss (``fill="impute"``).
        label_loss: ``"ce"``, ``"gce"`` or ``"sce"``.
        gce_q: ``q`` of GCE.
        sce_alpha: ``alpha`` of SCE.
        sce_beta: ``beta`` of SCE.
        hidden: Hidden width of the head.
        lr: Learning rate.
        weight_decay: Weight decay.
        seed: Seed of the modality-dropout random state (combined with the global step).
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        num_classes: int,
        embed_dim: int,
        fill: str = "zero",
        dropout_rate: float = 0.0,
        imputation_weight: float = 1.0,
        label_loss: str = "ce",
        gce_q: float = 0.7,
        sce_alpha: float = 0.1,
        sce_beta: float = 1.0,
        hidden: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if fill not in FILL_MODES:
            raise ValueError(f"method.fill={fill!r} is unknown; valid: {list(FILL_MODES)}.")
        if label_loss not in LABEL_LOSSES:
            raise ValueError(
                f"method.label_loss={label_loss!r} is unknown; valid: {list(LABEL_LOSSES)}."
            )
        if not 0 <= dropout_rate <= 1:
            raise ValueError(f"method.dropout_rate={dropout_rate} must lie in [0, 1].")
        modalities = encoder.modalities
        if fill == "impute" and len(modalities) < 2:
            raise ValueError("method.fill=impute needs at least two modalities.")
        self.encoder = encoder
        self.fill = fill
        self.dropout_rate = dropout_rate
        self.imputation_weight = imputation_weight
        self.label_loss = label_loss
        self.gce_q, self.sce_alpha, self.sce_beta = gce_q, sce_alpha, sce_beta
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        self.absent = AbsentEmbeddings(modalities, embed_dim) if fill != "zero" else None
        self.imputer = EmbeddingImputer(modalities, embed_dim, hidden) if fill == "impute" else None
        in_dim = len(modalities) * (embed_dim + 1)
        self.head = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def fill_absent(
        self, embeddings: dict[str, Tensor], present: dict[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """Fill absent rows.

        Returns:
            ``(filled embeddings, imputer predictions, has_source)``; the last two are empty
            unless ``fill="impute"``. Rows absent with no source present keep the learned
            absent embedding.
        """
        if self.fill == "zero":
            zeros = {m: torch.zeros_like(e[0]) for m, e in embeddings.items()}
            return fill_missing(embeddings, present, zeros), {}, {}
        assert self.absent is not None
        filled = self.absent(embeddings, present)
        if self.imputer is None:
            return filled, {}, {}
        predicted, has_source = self.imputer(embeddings, present)
        usable = {m: present[m] | ~has_source[m] for m in embeddings}
        return fill_missing(filled, usable, predicted), predicted, has_source

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from per-modality encoder outputs and presence masks."""
        filled, _, _ = self.fill_absent(dict(embeddings), dict(present))
        return self._head(filled, present)

    def _head(self, filled: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        names = list(self.encoder.modalities)
        flags = torch.stack([present[m] for m in names], dim=1).to(filled[names[0]].dtype)
        return self.head(torch.cat([*(filled[m] for m in names), flags], dim=1))  # type: ignore[no-any-return]

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality encoder outputs (absent rows filled as in training)."""
        filled, _, _ = self.fill_absent(self.encoder(batch.inputs), batch.present)
        return filled

    def classification_loss(self, logits: Tensor, label: Tensor, observed: Tensor) -> Tensor:
        """The configured label loss over observed labels."""
        if self.label_loss == "ce" or not bool(observed.any()):
            return masked_cross_entropy(logits, label, observed)
        if self.label_loss == "gce":
            return generalized_cross_entropy(logits[observed], label[observed], self.gce_q)
        return symmetric_cross_entropy(
            logits[observed], label[observed], self.sce_alpha, self.sce_beta
        )

    def _generator(self) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(self.seed * 1_000_003 + int(self.global_step))
        return generator

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """Training: drop modalities, fill, classify, impute where the target is observed.

        Validation: cross-entropy against the clean labels. Both log the accuracy (``acc``).
        """
        if stage != "train":
            logits = self.forward(batch)
            loss = F.cross_entropy(logits, batch.clean_label)
            terms = {}
        else:
            embeddings = self.encoder(batch.inputs)
            present = batch.present
            if self.dropout_rate > 0:
                present = modality_dropout(present, self.dropout_rate, self._generator())
            filled, predicted, has_source = self.fill_absent(embeddings, present)
            logits = self._head(filled, present)
            loss = self.classification_loss(logits, batch.label, batch.label_observed)
            terms = {"label": loss.detach()}
            if predicted:
                # The imputer sees the dropped-out masks, its target is the true embedding
                # wherever the modality was really observed (present in the batch, before dropout).
                imputed = imputation_loss(predicted, embeddings, batch.present, has_source)
                loss = loss + self.imputation_weight * imputed.loss
                terms["imputation"] = imputed.loss.detach()
        terms["acc"] = (logits.argmax(1) == batch.clean_label).float().mean()
        return LossOutput(loss, terms)


@METHODS.register("supervised_robust")
def build_supervised_robust(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    *,
    fill: Literal["zero", "absent", "impute"] = "zero",
    dropout_rate: float = 0.0,
    imputation_weight: float = 1.0,
    label_loss: Literal["ce", "gce", "sce"] = "ce",
    gce_q: float = 0.7,
    sce_alpha: float = 0.1,
    sce_beta: float = 1.0,
    hidden: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> RobustFusionMethod:
    """Supervised late fusion with modality dropout, absent embeddings/imputation, GCE/SCE.

    Args:
        encoder: Per-modality encoders.
        num_classes: Number of classes.
        fill: Absent modalities: ``zero``, a learned ``absent`` embedding or ``impute``d.
        dropout_rate: Modality dropout probability during training.
        imputation_weight: Weight of the imputation loss (``fill=impute``).
        label_loss: ``ce``, ``gce`` (generalised CE) or ``sce`` (symmetric CE).
        gce_q: ``q`` of GCE.
        sce_alpha: ``alpha`` of SCE.
        sce_beta: ``beta`` of SCE.
        hidden: Hidden width of the classification head.
        seed: Seed of the modality dropout (the run's seed in a config: ``${seed}``).
    """
    return RobustFusionMethod(
        encoder,
        num_classes,
        embed_dim,
        fill=fill,
        dropout_rate=dropout_rate,
        imputation_weight=imputation_weight,
        label_loss=label_loss,
        gce_q=gce_q,
        sce_alpha=sce_alpha,
        sce_beta=sce_beta,
        hidden=hidden,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
    )
