"""CLIP-style contrastive pre-training of per-modality encoders (all modality pairs)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.multimodal import MultimodalEncoder, ProjectionHead
from modalab.objectives.clip import CLIPLoss
from modalab.objectives.output import LossOutput

__all__ = ["CLIPMethod", "build_clip"]


class CLIPMethod(LossStepMethod):
    """Encoders + projection heads trained with the CLIP loss over every modality pair.

    Radford et al., ICML 2021. The encoders' outputs (before projection) are the
    representations evaluated downstream; the projected, L2-normalised embeddings form the
    joint space used for retrieval.

    Args:
        encoder: Per-modality encoders with projection heads.
        loss: The CLIP loss (owns the temperature).
        lr: Learning rate.
        weight_decay: Weight decay.
    """

    def __init__(
        self, encoder: MultimodalEncoder, loss: CLIPLoss, lr: float, weight_decay: float
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs) of a batch."""
        return self.encoder(batch.inputs)

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised projections into the joint space."""
        return {k: F.normalize(v, dim=-1) for k, v in self.encoder.project(representations).items()}

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """The CLIP loss over every modality pair of the batch."""
        return self.loss(self.encoder.project(self.encoder(batch.inputs)), batch.present)

    def log_extra(self, stage: str, batch_size: int) -> None:
        """The learned temperature's logit scale, during training."""
        if stage == "train":
            self.log(
                "train/logit_scale",
                self.loss.logit_scale.detach(),
                batch_size=batch_size,
                on_step=False,
                on_epoch=True,
            )


@METHODS.register("clip")
def build_clip(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    *,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    temperature: float = 0.07,
    learn_temperature: bool = True,
    proj_dim: int = 64,
    proj_hidden: int = 0,
) -> CLIPMethod:
    """CLIP: symmetric InfoNCE between every pair of modalities, learnable temperature.

    Args:
        num_classes: Number of classes of the data (unused: CLIP is self-supervised).
        temperature: Initial softmax temperature.
        learn_temperature: Learn the temperature (as a log-scale parameter).
        proj_dim: Size of the joint embedding.
        proj_hidden: 0: linear projection head (CLIP); > 0: two-layer MLP head of this width.
    """
    encoder.projections = nn.ModuleDict(
        {m: ProjectionHead(embed_dim, proj_dim, proj_hidden) for m in encoder.modalities}
    )
    loss = CLIPLoss(temperature=temperature, learn_temperature=learn_temperature)
    return CLIPMethod(encoder, loss, lr=lr, weight_decay=weight_decay)
