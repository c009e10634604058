"""Self-supervised pre-training, then supervised fine-tuning of the same encoders, in one run.

The *fine-tuned* reading of a self-supervised method, beside its *frozen* one (a linear probe
on the pre-trained encoders, what every self-supervised run reports) and supervised training
from scratch: for ``pretrain_epochs`` epochs the encoders learn with a self-supervised
objective (CLIP, SimCLR, VICReg, Barlow Twins or SimSiam across modalities, labels unused);
from then on the whole late-fusion classifier — the pre-trained encoders and a new head —
is trained with cross-entropy on the observed labels, as ``method=supervised`` trains from a
random start. So a label scenario (``label_noise``, ``label_scarcity``) reaches the
fine-tuning phase and never the pre-training.

The best checkpoint, early stopping and the plateau schedule count the fine-tuning epochs
only (``selection_start_epoch = pretrain_epochs``): the pre-training phase logs its own
objective as ``val/loss``, not comparable with the cross-entropy after it. One AdamW and one
learning-rate schedule span both phases (the encoders are fine-tuned at the schedule's rate,
no separate encoder rate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import ClassifierMethod, LossStepMethod
from modalab.methods.registry import METHODS
from modalab.methods.supervised import SupervisedFusionMethod, build_supervised
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.output import LossOutput

__all__ = ["PRETRAIN_METHODS", "FineTuneMethod", "build_finetune"]

#: Self-supervised methods whose loss is a pure function of the batch (no target network,
#: queue or epoch-dependent state), so that they can run inside another method.
PRETRAIN_METHODS = ("clip", "simclr", "vicreg", "barlow", "simsiam")


class FineTuneMethod(ClassifierMethod):
    """A self-supervised phase, then supervised late fusion on the same encoders.

    Args:
        pretrain: The self-supervised method, built on the classifier's encoder. Its encoder
            is registered once (in ``classifier``); its other parts (projection heads already
            inside the encoder, the loss's temperature, predictors) are registered here.
        classifier: Supervised late fusion on the same encoder.
        pretrain_epochs: Epochs of the self-supervised phase (>= 1).
        lr: Learning rate of both phases.
        weight_decay: Weight decay of both phases.
    """

    def __init__(
        self,
        pretrain: LossStepMethod,
        classifier: SupervisedFusionMethod,
        pretrain_epochs: int,
        lr: float,
        weight_decay: float,
    ) -> None:
        super().__init__()
        if pretrain_epochs < 1:
            raise ValueError(
                f"method.pretrain_epochs must be >= 1; got {pretrain_epochs} (0 epochs of "
                "pre-training is method=supervised)."
            )
        encoder = classifier.encoder
        if getattr(pretrain, "encoder", None) is not encoder:
            raise ValueError("the pre-training method must be built on the classifier's encoder.")
        self.classifier = classifier
        self.pretrain_parts = nn.ModuleDict(
            {name: child for name, child in pretrain.named_children() if child is not encoder}
        )
        # Not a submodule: its encoder is the classifier's, which the state holds once.
        object.__setattr__(self, "_pretrain", pretrain)
        self.pretrain_epochs = pretrain_epochs
        self.lr, self.weight_decay = lr, weight_decay

    @property
    def encoder(self) -> MultimodalEncoder:  # type: ignore[override]
        """The per-modality encoders (the classifier's; pre-trained, then fine-tuned)."""
        return self.classifier.encoder

    @property
    def in_pretraining(self) -> bool:
        """Whether the current epoch is one of the self-supervised phase."""
        return int(self.current_epoch) < self.pretrain_epochs

    @property
    def selection_start_epoch(self) -> int:
        """The first fine-tuning epoch: validation counts from it on."""
        return self.pretrain_epochs

    def on_fit_start(self) -> None:
        """Check that epochs remain for fine-tuning after the pre-training phase."""
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and 0 < max_epochs <= self.pretrain_epochs:
            raise ValueError(
                f"trainer.max_epochs={max_epochs} leaves no epoch for fine-tuning after "
                f"method.pretrain_epochs={self.pretrain_epochs}; raise max_epochs."
            )

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from per-modality encoder outputs (the classifier's head)."""
        return self.classifier.classify(embeddings, present)

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """Pre-training: the self-supervised loss; then cross-entropy on observed labels."""
        if self.in_pretraining:
            pretrain: LossStepMethod = self._pretrain  # type: ignore[assignment]
            out = pretrain.compute_loss(batch)
            return LossOutput(out.loss, {"pretrain": out.loss.detach()}, out.num_rows)
        return self.classifier.compute_loss(batch)


@METHODS.register("finetune")
def build_finetune(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    pretrain: str = "clip",
    pretrain_epochs: int = 10,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    fusion: Literal["concat", "mean"] = "concat",
    hidden: int = 128,
) -> FineTuneMethod:
    """Self-supervised pre-training (its defaults), then supervised fine-tuning end to end.

    Args:
        pretrain: The self-supervised method of the first phase, with its default settings:
            one of ``clip``, ``simclr``, ``vicreg``, ``barlow``, ``simsiam`` (across
            modalities).
        pretrain_epochs: Epochs of pre-training before fine-tuning (choose it from the
            self-supervised method's own early-stopping epoch on the same data).
        fusion: Fusion of the fine-tuned classifier (as ``method=supervised``).
        hidden: Hidden width of the classification head.
    """
    if pretrain not in PRETRAIN_METHODS:
        raise ValueError(
            f"method.pretrain={pretrain!r} cannot run inside fine-tuning; use one of "
            f"{list(PRETRAIN_METHODS)}."
        )
    classifier = build_supervised(
        encoder, num_classes, embed_dim, lr=lr, weight_decay=weight_decay, fusion=fusion,
        hidden=hidden,
    )  # fmt: skip
    kwargs: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if pretrain != "clip":
        kwargs.update(example=example, seed=seed)
    ssl = METHODS.get(pretrain)(encoder, num_classes, embed_dim, **kwargs)
    return FineTuneMethod(ssl, classifier, pretrain_epochs, lr, weight_decay)
