"""CoCa-style contrastive captioning: CLIP across modalities plus a caption decoder.

Yu et al., "CoCa: Contrastive Captioners are Image-Text Foundation Models", TMLR 2022. The
caption (a token-id modality) is decoded autoregressively by a causal Transformer that
cross-attends to the token states of the *other* present modalities; the loss is the CLIP loss
plus ``caption_weight`` times the next-token cross-entropy over rows that have a caption and
at least one other modality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import DataInfo
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.encoders import token_states, token_width
from modalab.models.fusion import CaptionDecoder
from modalab.models.multimodal import MultimodalEncoder, ProjectionHead
from modalab.objectives.clip import CLIPLoss
from modalab.objectives.masked import captioning_loss
from modalab.objectives.output import LossOutput

__all__ = ["CoCaMethod", "build_coca"]


class CoCaMethod(LossStepMethod):
    """CLIP + autoregressive captioning conditioned on the other modalities.

    Args:
        encoder: Per-modality encoders with projection heads (conditioning encoders need
            ``token_states``).
        clip: The CLIP loss.
        decoder: The caption decoder.
        memory: Conditioning modality → ``Linear(width_m, decoder_width)``.
        caption_modality: The token-id modality that is decoded.
        caption_weight: Weight of the captioning term.
        pad_id: Padding id of the captions.
        lr: Learning rate.
        weight_decay: Weight decay.
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        clip: CLIPLoss,
        decoder: CaptionDecoder,
        memory: nn.ModuleDict,
        caption_modality: str,
        caption_weight: float,
        pad_id: int,
        lr: float,
        weight_decay: float,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.clip = clip
        self.decoder = decoder
        self.memory = memory
        self.caption_modality = caption_modality
        self.caption_weight = caption_weight
        self.pad_id = pad_id
        self.lr = lr
        self.weight_decay = weight_decay

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs)."""
        return self.encoder(batch.inputs)

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised projections into the joint space."""
        return {k: F.normalize(v, dim=-1) for k, v in self.encoder.project(representations).items()}

    def caption_logits(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        """Next-token logits ``[B, L, V]`` of the captions and the rows ``[B]`` they count on."""
        memories, keeps, any_other = [], [], None
        for m, project in self.memory.items():
            states, keep = token_states(self.encoder.encoders[m], batch.inputs[m])
            memories.append(project(states))
            keeps.append(keep & batch.present[m].unsqueeze(1))
            any_other = batch.present[m] if any_other is None else any_other | batch.present[m]
        assert any_other is not None
        logits = self.decoder(
            batch.inputs[self.caption_modality], torch.cat(memories, 1), torch.cat(keeps, 1)
        )
        return logits, batch.present[self.caption_modality] & any_other

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """CLIP over modality pairs + captioning."""
        clip = self.clip(self.encoder.project(self.encoder(batch.inputs)), batch.present)
        logits, rows = self.caption_logits(batch)
        caption = captioning_loss(logits, batch.inputs[self.caption_modality], self.pad_id, rows)
        return LossOutput(
            clip.loss + self.caption_weight * caption, {"clip": clip.loss, "caption": caption}
        )


@METHODS.register("coca")
def build_coca(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    data_info: DataInfo | None = None,
    *,
    caption_modality: str = "text",
    caption_weight: float = 1.0,
    temperature: float = 0.07,
    proj_dim: int = 64,
    decoder_width: int = 64,
    decoder_depth: int = 2,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> CoCaMethod:
    """CoCa: CLIP plus GPT-style captioning conditioned on the other modalities (TMLR 2022).

    Args:
        encoder: Per-modality encoders; the non-caption ones need ``token_states``.
        example: A training batch, to size the caption decoder.
        data_info: The dataset's info (``vocab_size``, ``pad_id``).
        caption_modality: The token-id modality that is captioned.
        caption_weight: Weight of the captioning loss beside the contrastive one.
        temperature: Softmax temperature of the contrastive (CLIP) term.
        proj_dim: Size of the joint embedding.
        decoder_width: Width of the caption decoder.
        decoder_depth: Number of layers of the caption decoder.
    """
    if example is None:
        raise ValueError("build_coca needs an example batch.")
    info = data_info or DataInfo()
    if caption_modality not in encoder.modalities:
        raise ValueError(
            f"method.caption_modality={caption_modality!r} is not a modality of the data "
            f"({list(encoder.modalities)}); CoCa needs a token-id caption modality."
        )
    captions = example.inputs[caption_modality]
    if captions.is_floating_point() or captions.dim() != 2 or info.vocab_size is None:
        raise ValueError(
            f"CoCa decodes token ids [B, L] with a known vocab_size; {caption_modality!r} has "
            f"{captions.dtype} inputs of shape {tuple(captions.shape)}."
        )
    if len(encoder.modalities) < 2:
        raise ValueError("CoCa needs a caption modality and at least one other modality.")
    memory = nn.ModuleDict()
    for m in encoder.modalities:
        if m == caption_modality:
            continue
        module = encoder.encoders[m]
        if not hasattr(module, "token_states"):
            raise ValueError(f"The encoder of {m!r} has no token_states to condition on.")
        memory[m] = nn.Linear(token_width(module), decoder_width)
    encoder.projections = nn.ModuleDict(
        {m: ProjectionHead(embed_dim, proj_dim, 0) for m in encoder.modalities}
    )
    decoder = CaptionDecoder(
        info.vocab_size,
        int(captions.shape[1]),
        decoder_width,
        decoder_depth,
        pad_id=info.pad_id or 0,
    )
    return CoCaMethod(
        encoder,
        CLIPLoss(temperature),
        decoder,
        memory,
        caption_modality,
        caption_weight,
        info.pad_id or 0,
        lr,
        weight_decay,
    )
