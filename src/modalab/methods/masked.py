"""Masked modelling: masked tokens (text), masked patches (images, audio), masked modality.

* Token modalities: BERT's masked token prediction (Devlin et al., NAACL 2019) from the
  encoder's per-token states.
* Float modalities: MAE-style masked patch prediction (He et al., CVPR 2022) — random patches
  are zeroed before the encoder, a linear decoder predicts every patch from the pooled
  representation and the loss counts the masked patches only; sides that are not a multiple of
  the patch size are zero-padded at the end (as Audio-MAE pads spectrograms).
* Masked-modality modelling: each modality's (stop-gradient) embedding is predicted from the
  mean of the other present modalities' embeddings (as in ViLBERT/LXMERT's masked multimodal
  modelling, at the level of whole modalities).

Rows of absent modalities contribute to no term.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.augment import mask_tokens
from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import DataInfo
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.encoders import token_states, token_width
from modalab.models.multimodal import MeanFusion, MultimodalEncoder, ProjectionHead
from modalab.objectives.masked import masked_feature_loss, masked_modality_loss, masked_token_loss
from modalab.objectives.output import LossOutput

__all__ = ["MaskedModellingMethod", "build_masked", "pad_to_patches", "patchify", "unpatchify"]


def patchify(x: Tensor, patch: int) -> Tensor:
    """Split ``[B, C, H, W]`` into ``[B, HW/p², C p²]`` or ``[B, C, T]`` into ``[B, T/p, C p]``.

    Example:
        >>> patchify(torch.arange(8.0).view(1, 1, 8), 4).tolist()
        [[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]]
    """
    if any(s % patch for s in x.shape[2:]):
        raise ValueError(
            f"Input of shape {tuple(x.shape)} is not divisible into patches of size {patch}; "
            "choose a patch size that divides every spatial dimension."
        )
    if x.dim() == 4:
        return F.unfold(x, patch, stride=patch).transpose(1, 2)
    if x.dim() == 3:
        b, c, t = x.shape
        return x.view(b, c, t // patch, patch).permute(0, 2, 1, 3).reshape(b, t // patch, c * patch)
    raise ValueError(f"patchify expects [B, C, H, W] or [B, C, T], got {tuple(x.shape)}.")


def unpatchify(patches: Tensor, shape: torch.Size, patch: int) -> Tensor:
    """Inverse of :func:`patchify` for an input of ``shape``.

    Example:
        >>> x = torch.randn(2, 3, 8, 8)
        >>> torch.equal(unpatchify(patchify(x, 4), x.shape, 4), x)
        True
    """
    if len(shape) == 4:
        return F.fold(patches.transpose(1, 2), tuple(shape[2:]), patch, stride=patch)
    b, c, t = shape
    return patches.view(b, t // patch, c, patch).permute(0, 2, 1, 3).reshape(b, c, t)


def pad_to_patches(x: Tensor, patch: int) -> Tensor:
    """Zero-pad the end of every spatial side of ``x`` up to a multiple of ``patch``.

    Spectrograms rarely have sides divisible by a patch size (AV-MNIST's log-mel is
    ``[B, 1, 40, 101]``); as in Audio-MAE (Huang et al., NeurIPS 2022) they are padded, and
    the encoder still sees the original shape (the padding is cropped off after masking).

    Args:
        x: ``[B, C, H, W]`` or ``[B, C, T]``.
        patch: Patch side.

    Returns:
        ``[B, C, H', W']`` or ``[B, C, T']`` with every side a multiple of ``patch``.

    Example:
        >>> pad_to_patches(torch.ones(1, 1, 5, 8), 4).shape
        torch.Size([1, 1, 8, 8])
    """
    pads: list[int] = []
    for side in reversed(x.shape[2:]):
        pads += [0, -side % patch]
    return F.pad(x, pads) if any(pads) else x


def _is_tokens(example: Tensor) -> bool:
    return not example.is_floating_point() and example.dim() == 2


class MaskedModellingMethod(LossStepMethod):
    """Masked token / patch prediction per modality plus masked-modality prediction.

    Args:
        encoder: Per-modality encoders (token modalities need ``token_states``).
        token_heads: Token modality → ``Linear(width, vocab)``.
        patch_decoders: Float modality → ``Linear(embed_dim, P·F)``.
        patch_sizes: Float modality → patch size.
        predictors: Modality → predictor of its embedding from the others.
        mask_prob: Fraction of tokens / patches masked.
        mask_id: ``[MASK]`` token id.
        pad_id: Padding id.
        modality_weight: Weight of the masked-modality term.
        lr: Learning rate.
        weight_decay: Weight decay.
        seed: Seed of the masking generator.
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        token_heads: nn.ModuleDict,
        patch_decoders: nn.ModuleDict,
        patch_sizes: dict[str, int],
        predictors: nn.ModuleDict,
        mask_prob: float,
        mask_id: int,
        pad_id: int,
        modality_weight: float,
        lr: float,
        weight_decay: float,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not 0.0 < mask_prob < 1.0:
            raise ValueError(f"method.mask_prob must be in (0, 1), got {mask_prob}.")
        self.encoder = encoder
        self.token_heads = token_heads
        self.patch_decoders = patch_decoders
        self.patch_sizes = patch_sizes
        self.predictors = predictors
        self.mask_prob = mask_prob
        self.mask_id = mask_id
        self.pad_id = pad_id
        self.modality_weight = modality_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.generator = torch.Generator().manual_seed(seed)
        self.fuse = MeanFusion()

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations of the unmasked inputs."""
        return self.encoder(batch.inputs)

    #: No joint space is trained: retrieval and alignment in it would mean nothing.
    trains_joint_space = False

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """The representations themselves (no joint space is trained)."""
        return representations

    def _mask_patches(self, x: Tensor, patch: int) -> tuple[Tensor, Tensor, Tensor]:
        padded = pad_to_patches(x, patch)
        patches = patchify(padded, patch)
        draw = torch.rand(patches.shape[:2], generator=self.generator).to(x.device)
        masked = draw < self.mask_prob
        hidden = unpatchify(patches * (~masked).unsqueeze(-1).to(x.dtype), padded.shape, patch)
        crop = (slice(None), slice(None), *(slice(0, s) for s in x.shape[2:]))
        return hidden[crop], patches, masked

    def compute_loss(self, batch: MultimodalBatch) -> LossOutput:
        """Masked reconstruction of every modality and masked-modality prediction."""
        terms: dict[str, Tensor] = {}
        masked_reps: dict[str, Tensor] = {}
        for m, x in batch.inputs.items():
            present = batch.present[m]
            encoder = self.encoder.encoders[m]
            if m in self.token_heads:
                tokens, where = mask_tokens(
                    x, self.mask_prob, self.mask_id, self.generator, pad_id=self.pad_id
                )
                states, _ = token_states(encoder, tokens)
                logits = self.token_heads[m](states)
                terms[f"mlm/{m}"] = masked_token_loss(logits, x, where & present.unsqueeze(1))
                masked_reps[m] = encoder(tokens)
            else:
                hidden, patches, where = self._mask_patches(x, self.patch_sizes[m])
                rep = encoder(hidden)
                prediction = self.patch_decoders[m](rep).view_as(patches)
                terms[f"mpm/{m}"] = masked_feature_loss(
                    prediction, patches, where & present.unsqueeze(1)
                )
                masked_reps[m] = rep
        total = torch.stack(list(terms.values())).mean()
        if len(masked_reps) > 1 and self.modality_weight > 0:
            with torch.no_grad():
                targets = self.encoder(batch.inputs)
            predictions: dict[str, Tensor] = {}
            valid: dict[str, Tensor] = {}
            for m in masked_reps:
                others = [o for o in masked_reps if o != m]
                context = self.fuse(
                    {o: masked_reps[o] for o in others}, {o: batch.present[o] for o in others}
                )
                predictions[m] = self.predictors[m](context)
                any_other = torch.stack([batch.present[o] for o in others]).any(0)
                valid[m] = batch.present[m] & any_other
            modality = masked_modality_loss(predictions, targets, valid)
            terms["masked_modality"] = modality.loss
            total = total + self.modality_weight * modality.loss
        return LossOutput(total, terms)


def _default_patch(x: Tensor, image_patch: int, sequence_patch: int) -> int:
    return image_patch if x.dim() == 4 else sequence_patch


@METHODS.register("masked")
def build_masked(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    data_info: DataInfo | None = None,
    seed: int = 0,
    *,
    mask_prob: float = 0.3,
    image_patch: int = 8,
    sequence_patch: int = 64,
    modality_weight: float = 1.0,
    predictor_hidden: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> MaskedModellingMethod:
    """Masked modelling: masked tokens (BERT), masked patches (MAE) and masked modality.

    Args:
        encoder: Per-modality encoders (token modalities need ``token_states``).
        example: A training batch, to size the decoders.
        data_info: The dataset's info (``vocab_size``, ``mask_id`` for token modalities).
        seed: Seed of the masks.
        mask_prob: Probability that a token or patch is masked.
        image_patch: Patch side for ``[B, C, H, W]`` inputs.
        sequence_patch: Patch length for ``[B, C, T]`` inputs.
        modality_weight: Weight of masked-modality prediction.
        predictor_hidden: Hidden width of the masked-modality predictor.
    """
    if example is None:
        raise ValueError("build_masked needs an example batch to size its decoders.")
    info = data_info or DataInfo()
    token_heads = nn.ModuleDict()
    decoders = nn.ModuleDict()
    patch_sizes: dict[str, int] = {}
    for m in encoder.modalities:
        x = example.inputs[m]
        module = encoder.encoders[m]
        if _is_tokens(x):
            if not hasattr(module, "token_states") or info.vocab_size is None:
                raise ValueError(
                    f"Masked token prediction for {m!r} needs an encoder with token_states and "
                    "a dataset whose info gives vocab_size and mask_id."
                )
            token_heads[m] = nn.Linear(token_width(module), info.vocab_size)
        elif x.dim() in (3, 4):
            patch = _default_patch(x, image_patch, sequence_patch)
            patches = patchify(pad_to_patches(x.float(), patch), patch)
            patch_sizes[m] = patch
            decoders[m] = nn.Linear(embed_dim, patches.shape[1] * patches.shape[2])
        else:
            raise ValueError(
                f"No masked modelling for modality {m!r} with inputs {tuple(x.shape)}; "
                "expected token ids [B, L], images [B, C, H, W] or sequences [B, C, T]."
            )
    if token_heads and info.mask_id is None:
        raise ValueError("Masked token prediction needs the dataset's mask_id in its info.")
    predictors = nn.ModuleDict(
        {m: ProjectionHead(embed_dim, embed_dim, predictor_hidden) for m in encoder.modalities}
    )
    return MaskedModellingMethod(
        encoder,
        token_heads,
        decoders,
        patch_sizes,
        predictors,
        mask_prob,
        3 if info.mask_id is None else info.mask_id,
        info.pad_id or 0,
        modality_weight,
        lr,
        weight_decay,
        seed,
    )
