"""Contrastive pre-training robust to misaligned pairs: RINCE and small-loss pair filtering.

A CLIP-style recipe whose loss is either InfoNCE or RINCE (Chuang et al., CVPR 2022), optionally
restricted, after a warm-up, to the ``keep_fraction`` of pairs with the smallest per-pair loss
(the small-loss trick; Han et al., "Co-teaching", NeurIPS 2018; applied to noisy image-text pairs
by Huang et al., "Learning with Noisy Correspondence for Cross-modal Matching", NeurIPS 2021).

If a batch carries ``extras["misaligned"]`` (a ``[B]`` bool mask a scenario sets for pairs it
broke), the precision and recall of the pairs flagged by the filter are logged as
``train/flag_precision`` and ``train/flag_recall``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.multimodal import MultimodalEncoder, ProjectionHead
from modalab.objectives.distributed import gather_with_grad
from modalab.objectives.output import LossOutput
from modalab.objectives.robust import pairwise_info_nce, rince_pair, small_loss_selection

__all__ = ["PAIR_LOSSES", "RobustCLIPMethod", "build_clip_rince"]

PAIR_LOSSES = ("infonce", "rince")


class RobustCLIPMethod(LossStepMethod):
    """Two-modality contrastive learning with RINCE and/or small-loss pair filtering.

    Args:
        encoder: Per-modality encoders with projection heads.
        modalities: The two modalities to contrast.
        loss: ``"infonce"`` or ``"rince"``.
        temperature: Fixed temperature.
        q: RINCE ``q``.
        lam: RINCE ``lambda``.
        keep_fraction: Fraction of pairs kept by the small-loss filter (1: no filtering).
        filter_warmup_epochs: Epochs trained on all pairs before filtering starts.
        lr: Learning rate.
        weight_decay: Weight decay.
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        modalities: tuple[str, str],
        loss: str = "rince",
        temperature: float = 0.1,
        q: float = 0.5,
        lam: float = 0.01,
        keep_fraction: float = 1.0,
        filter_warmup_epochs: int = 1,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        if loss not in PAIR_LOSSES:
            raise ValueError(f"method.loss={loss!r} is unknown; valid: {list(PAIR_LOSSES)}.")
        if temperature <= 0:
            raise ValueError(f"method.temperature={temperature} must be positive.")
        if not 0 < keep_fraction <= 1:
            raise ValueError(f"method.keep_fraction={keep_fraction} must lie in (0, 1].")
        if loss == "rince" and not (0 < q <= 1 and lam > 0):
            raise ValueError(f"RINCE needs q in (0, 1] and lam > 0, got q={q}, lam={lam}.")
        self.encoder = encoder
        self.modalities = modalities
        self.loss_name = loss
        self.logit_scale = 1.0 / temperature
        self.q, self.lam = q, lam
        self.keep_fraction = keep_fraction
        self.filter_warmup_epochs = filter_warmup_epochs
        self.lr, self.weight_decay = lr, weight_decay

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs)."""
        return self.encoder(batch.inputs)

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised projections into the joint space."""
        return {k: F.normalize(v, dim=-1) for k, v in self.encoder.project(representations).items()}

    def pair_losses(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        """Per-pair losses ``[N]`` over jointly present rows, and those rows ``[B]`` (bool).

        Under DDP the embeddings and rows of every process are gathered (with gradients), so
        the negatives, the per-pair losses and the small-loss selection are those of the
        global batch, the same on every process; ``rows`` is then ``[world_size * B]``.
        """
        a, b = self.modalities
        z = self.joint_embeddings(self.encoder({m: batch.inputs[m] for m in self.modalities}))
        rows = gather_with_grad(batch.present[a] & batch.present[b])
        za, zb = gather_with_grad(z[a])[rows], gather_with_grad(z[b])[rows]
        if self.loss_name == "rince":
            return rince_pair(za, zb, self.logit_scale, self.q, self.lam), rows
        return pairwise_info_nce(za, zb, self.logit_scale), rows

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """Mean per-pair loss; in training after the warm-up, over the small-loss pairs only."""
        losses, rows = self.pair_losses(batch)
        count = {"pairs": int(losses.numel())}
        if losses.numel() < 2:
            return LossOutput(losses.sum() * 0.0, {}, count)
        terms: dict[str, Tensor] = {}
        filtering = (
            stage == "train"
            and self.keep_fraction < 1
            and int(self.current_epoch) >= self.filter_warmup_epochs
        )
        if not filtering:
            return LossOutput(losses.mean(), terms, count)
        keep = small_loss_selection(losses, self.keep_fraction)
        if "misaligned" in batch.extras:
            truth = gather_with_grad(batch.extras["misaligned"])[rows].bool()
            flagged = ~keep
            hits = (flagged & truth).sum().float()
            terms["flag_precision"] = hits / flagged.sum().clamp_min(1)
            terms["flag_recall"] = hits / truth.sum().clamp_min(1)
        return LossOutput(losses[keep].mean(), terms, count)


@METHODS.register("clip_rince")
def build_clip_rince(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    *,
    modalities: tuple[str, ...] = (),
    loss: Literal["infonce", "rince"] = "rince",
    temperature: float = 0.1,
    q: float = 0.5,
    lam: float = 0.01,
    keep_fraction: float = 1.0,
    filter_warmup_epochs: int = 1,
    proj_dim: int = 64,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> RobustCLIPMethod:
    """Contrastive pairs robust to misalignment: RINCE and/or small-loss pair filtering.

    Args:
        modalities: The two modalities to contrast; empty: the data's first two.
        loss: ``infonce`` or ``rince``.
        temperature: Fixed softmax temperature.
        q: RINCE robustness ``q`` in (0, 1].
        lam: RINCE partition weight ``lambda``.
        keep_fraction: Fraction of pairs kept by the small-loss filter (1: no filtering).
        filter_warmup_epochs: Epochs trained on all pairs before filtering starts.
        proj_dim: Size of the joint embedding.
    """
    names = list(modalities) if modalities else list(encoder.modalities)[:2]
    if len(names) != 2 or any(n not in encoder.modalities for n in names):
        raise ValueError(
            f"method.modalities must name two modalities of the data {list(encoder.modalities)}, "
            f"got {names}."
        )
    encoder.projections = nn.ModuleDict({m: ProjectionHead(embed_dim, proj_dim) for m in names})
    return RobustCLIPMethod(
        encoder,
        (names[0], names[1]),
        loss=loss,
        temperature=temperature,
        q=q,
        lam=lam,
        keep_fraction=keep_fraction,
        filter_warmup_epochs=filter_warmup_epochs,
        lr=lr,
        weight_decay=weight_decay,
    )
