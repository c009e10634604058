"""Cross-attention fusion pre-trained with masked modelling and matching (ViLBERT/LXMERT).

Every modality's encoder yields token states (a Transformer's per-token states, a CNN's
feature-map positions); :class:`~modalab.models.fusion.CrossAttentionFusion` joins them with
co-attention layers. Pre-training combines

* masked modelling inside the fusion: a fraction of every stream's tokens is replaced by a
  learned mask token; token-id modalities predict the original ids (BERT), feature
  modalities regress the original (stop-gradient) token features;
* matching (Lu et al., NeurIPS 2019; Tan & Bansal, EMNLP 2019): the ``match_modality`` of the
  batch is rolled by one row to make swapped pairs, and a head on the fused vector tells real
  from swapped pairs.

A per-modality representation is the modality's summary token when it is the only present
modality (the others enter as their learned absent tokens).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modalab.data.augment import mask_tokens
from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import DataInfo
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.encoders import token_states
from modalab.models.fusion import CrossAttentionFusion, FusionOutput
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.masked import masked_feature_loss, masked_token_loss, matching_loss
from modalab.objectives.output import LossOutput

__all__ = ["CrossAttentionFusionMethod", "build_fusion"]


class CrossAttentionFusionMethod(LossStepMethod):
    """Encoders → token streams → co-attention fusion; masked modelling + matching.

    Args:
        encoder: Per-modality encoders with ``token_states``.
        fusion: The cross-attention fusion.
        token_heads: Token-id modality → ``Linear(width, vocab)``.
        feature_heads: Feature modality → ``Linear(width, D_m)``.
        match_modality: The modality swapped to make negative pairs.
        match_head: ``Linear(width, 1)`` on the fused vector.
        mask_prob: Fraction of tokens masked per stream.
        mask_id: ``[MASK]`` id of token-id modalities (their inputs are masked too).
        pad_id: Padding id.
        match_weight: Weight of the matching term.
        lr: Learning rate.
        weight_decay: Weight decay.
        seed: Seed of the masking generator.
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        fusion: CrossAttentionFusion,
        token_heads: nn.ModuleDict,
        feature_heads: nn.ModuleDict,
        match_modality: str,
        match_head: nn.Module,
        mask_prob: float,
        mask_id: int,
        pad_id: int,
        match_weight: float,
        lr: float,
        weight_decay: float,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if match_modality not in encoder.modalities:
            raise ValueError(
                f"method.match_modality={match_modality!r} is not a modality of the data; "
                f"valid: {list(encoder.modalities)}."
            )
        self.encoder = encoder
        self.fusion = fusion
        self.token_heads = token_heads
        self.feature_heads = feature_heads
        self.match_modality = match_modality
        self.match_head = match_head
        self.mask_prob = mask_prob
        self.mask_id = mask_id
        self.pad_id = pad_id
        self.match_weight = match_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.generator = torch.Generator().manual_seed(seed)

    def _tokens(self, inputs: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        states, keep = {}, {}
        for m, x in inputs.items():
            states[m], keep[m] = token_states(self.encoder.encoders[m], x)
        return states, keep

    def fuse(self, batch: MultimodalBatch) -> FusionOutput:
        """Fusion of a batch, nothing masked."""
        tokens, keep = self._tokens(batch.inputs)
        return self.fusion(tokens, keep, batch.present)

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Each modality's summary token with that modality alone present."""
        tokens, keep = self._tokens(batch.inputs)
        out: dict[str, Tensor] = {}
        for m in batch.inputs:
            alone = {o: batch.present[o] & (o == m) for o in batch.inputs}
            out[m] = self.fusion(tokens, keep, alone).cls[m]
        return out

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """The summary tokens themselves (the streams share one width)."""
        return representations

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """Masked modelling in every stream plus matching of real against swapped pairs."""
        inputs = dict(batch.inputs)
        token_masks: dict[str, Tensor] = {}
        for m in self.token_heads:
            inputs[m], token_masks[m] = mask_tokens(
                batch.inputs[m], self.mask_prob, self.mask_id, self.generator, pad_id=self.pad_id
            )
        tokens, keep = self._tokens(inputs)
        stream_masks: dict[str, Tensor] = {}
        for m in self.feature_heads:
            draw = torch.rand(keep[m].shape, generator=self.generator).to(keep[m].device)
            stream_masks[m] = (draw < self.mask_prob) & keep[m]
        out = self.fusion(tokens, keep, batch.present, masked=stream_masks)
        terms: dict[str, Tensor] = {}
        for m, head in self.token_heads.items():
            where = token_masks[m] & batch.present[m].unsqueeze(1)
            terms[f"mlm/{m}"] = masked_token_loss(head(out.states[m]), batch.inputs[m], where)
        for m, head in self.feature_heads.items():
            where = stream_masks[m] & batch.present[m].unsqueeze(1)
            terms[f"mfm/{m}"] = masked_feature_loss(head(out.states[m]), tokens[m].detach(), where)
        total = torch.stack(list(terms.values())).mean()

        m = self.match_modality
        others = [o for o in batch.inputs if o != m]
        any_other = torch.stack([batch.present[o] for o in others]).any(0)
        swapped_tokens = dict(tokens)
        swapped_keep = dict(keep)
        swapped_present = dict(batch.present)
        swapped_tokens[m] = tokens[m].roll(1, dims=0)
        swapped_keep[m] = keep[m].roll(1, dims=0)
        swapped_present[m] = batch.present[m].roll(1, dims=0)
        negative = self.fusion(swapped_tokens, swapped_keep, swapped_present, masked=stream_masks)
        logits = torch.cat(
            [self.match_head(out.fused).squeeze(-1), self.match_head(negative.fused).squeeze(-1)]
        )
        is_match = torch.cat(
            [torch.ones_like(any_other), batch.index.roll(1, dims=0) == batch.index]
        )
        valid = torch.cat([batch.present[m] & any_other, swapped_present[m] & any_other])
        terms["matching"] = matching_loss(logits, is_match, valid)
        total = total + self.match_weight * terms["matching"]
        return LossOutput(total, terms)


@METHODS.register("fusion")
def build_fusion(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    data_info: DataInfo | None = None,
    seed: int = 0,
    *,
    width: int = 64,
    depth: int = 2,
    heads: int = 4,
    mask_prob: float = 0.2,
    match_modality: str = "",
    match_weight: float = 1.0,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
) -> CrossAttentionFusionMethod:
    """Cross-attention (co-attention) fusion with masked modelling and matching (ViLBERT).

    Args:
        encoder: Per-modality encoders with ``token_states``.
        example: A training batch, to size the token streams.
        data_info: The dataset's info (``vocab_size``, ``mask_id`` for token modalities).
        seed: Seed of the masking and of the swapped (negative) pairs.
        width: Width of the cross-attention layers.
        depth: Number of co-attention layers.
        heads: Attention heads per layer.
        mask_prob: Probability that a token is masked for masked modelling.
        match_modality: The modality swapped to make non-matching pairs; ``""``: the last.
        match_weight: Weight of the matching loss.
    """
    if example is None:
        raise ValueError("build_fusion needs an example batch to size the token streams.")
    if len(encoder.modalities) < 2:
        raise ValueError(f"Fusion needs at least two modalities, got {list(encoder.modalities)}.")
    info = data_info or DataInfo()
    dims: dict[str, int] = {}
    counts: dict[str, int] = {}
    token_heads = nn.ModuleDict()
    feature_heads = nn.ModuleDict()
    with torch.no_grad():
        for m in encoder.modalities:
            module = encoder.encoders[m]
            if not hasattr(module, "token_states"):
                raise ValueError(
                    f"The encoder of {m!r} ({type(module).__name__}) has no token_states; "
                    "cross-attention fusion needs a CNN or Transformer encoder."
                )
            x = example.inputs[m]
            was_training = module.training
            module.eval()
            states, _ = token_states(module, x)
            module.train(was_training)
            dims[m], counts[m] = int(states.shape[2]), int(states.shape[1])
            if not x.is_floating_point() and x.dim() == 2:
                if info.vocab_size is None or info.mask_id is None:
                    raise ValueError(
                        f"Masked token prediction for {m!r} needs vocab_size and mask_id in "
                        "the dataset's info."
                    )
                token_heads[m] = nn.Linear(width, info.vocab_size)
            else:
                feature_heads[m] = nn.Linear(width, dims[m])
    fusion = CrossAttentionFusion(dims, counts, width=width, depth=depth, heads=heads)
    return CrossAttentionFusionMethod(
        encoder,
        fusion,
        token_heads,
        feature_heads,
        match_modality or encoder.modalities[-1],
        nn.Linear(width, 1),
        mask_prob,
        3 if info.mask_id is None else info.mask_id,
        info.pad_id or 0,
        match_weight,
        lr,
        weight_decay,
        seed,
    )
