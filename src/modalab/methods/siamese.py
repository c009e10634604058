"""Two-branch self-supervised recipes: SimCLR, SLIP, MoCo v2/v3, BYOL, SimSiam, VICReg, Barlow.

A recipe either works *within* one modality (``modality="image"``: two augmented views of the
same input are the two branches) or *across* modalities (``modality=""``: every modality is a
branch and every pair of modalities is contrasted/aligned, rows of absent modalities excluded).
The objective module decides what is compared; the recipe only wires encoders, projection and
prediction heads, the momentum (EMA) target and the augmentations.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.augment import ModalityAugment
from modalab.data.batch import MultimodalBatch
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.multimodal import MultimodalEncoder, ProjectionHead
from modalab.objectives.clip import CLIPLoss
from modalab.objectives.contrastive import MoCoLoss, NTXentLoss
from modalab.objectives.noncontrastive import BarlowTwinsLoss, BYOLLoss, VICRegLoss
from modalab.objectives.output import LossOutput

__all__ = [
    "SiameseMethod",
    "build_barlow",
    "build_byol",
    "build_moco",
    "build_simclr",
    "build_simsiam",
    "build_slip",
    "build_vicreg",
]

_VIEWS = ("view1", "view2")


class SiameseMethod(LossStepMethod):
    """Online encoder (+ projection, + optional predictor), optional EMA target, one objective.

    Args:
        encoder: Per-modality encoders with projection heads.
        objective: A loss module. Its class attribute ``takes_targets`` (default ``False``)
            says what it compares: ``False`` — the branches' projections,
            ``objective(z, present)`` (:class:`NTXentLoss`, :class:`VICRegLoss`,
            :class:`BarlowTwinsLoss`); ``True`` — predictions against (momentum) targets,
            ``objective(predicted, targets, present)`` (:class:`BYOLLoss`,
            :class:`MoCoLoss`). A loss with ``keeps_queue = True`` gets
            ``objective.enqueue(targets, present)`` after each training loss (MoCo v2).
        modality: One modality (two augmented views) or ``""`` (across modalities).
        augment: Augmentations keyed by modality (required within a modality).
        predictors: Modality → predictor head (BYOL, SimSiam, MoCo v3), or ``None``.
        momentum: EMA momentum of the target network; ``0`` uses no target network.
        lr: Learning rate.
        weight_decay: Weight decay.
        clip: Optional CLIP loss across modalities on separate heads (SLIP).
        clip_projections: Modality → CLIP projection head, with ``clip``.
        clip_weight: Weight of the CLIP term.
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        objective: nn.Module,
        modality: str,
        augment: ModalityAugment | None,
        predictors: nn.ModuleDict | None,
        momentum: float,
        lr: float,
        weight_decay: float,
        clip: CLIPLoss | None = None,
        clip_projections: nn.ModuleDict | None = None,
        clip_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if modality and modality not in encoder.modalities:
            raise ValueError(
                f"method.modality={modality!r} is not a modality of the data; valid: "
                f"{list(encoder.modalities)} or '' (across modalities)."
            )
        if modality and augment is None:
            raise ValueError("Two views of one modality need augmentations (augment=True).")
        if not modality and len(encoder.modalities) < 2:
            raise ValueError(
                f"Across modalities needs at least two, the data has {list(encoder.modalities)};"
                " set method.modality to one of them."
            )
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.encoder = encoder
        self.objective = objective
        self.modality = modality
        self.augment = augment
        self.predictors = predictors
        self.momentum = momentum
        self.lr = lr
        self.weight_decay = weight_decay
        self.clip = clip
        self.clip_projections = clip_projections
        self.clip_weight = clip_weight
        if modality and clip is None:
            # Only this modality's encoder is trained; the others stay as initialised (and
            # out of DDP's gradient reduction, which would otherwise wait for them).
            for other in encoder.modalities:
                if other != modality:
                    encoder.encoders[other].requires_grad_(False)
        self.target: MultimodalEncoder | None = None
        if momentum > 0:
            self.target = copy.deepcopy(encoder)
            self.target.requires_grad_(False)

    # evaluation interface -------------------------------------------------------------------
    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations (encoder outputs) of a batch."""
        return self.encoder(batch.inputs)

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """L2-normalised projections of the modalities that have a head (retrieval space)."""
        heads = self.clip_projections if self.clip_projections is not None else None
        if heads is None:
            heads = self.encoder.projections
        return {
            m: F.normalize(heads[m](r), dim=-1) for m, r in representations.items() if m in heads
        }

    # training -------------------------------------------------------------------------------
    def _branches(
        self, batch: MultimodalBatch
    ) -> tuple[dict[str, tuple[str, Tensor]], dict[str, Tensor]]:
        """Branch name → (modality, input), and branch presence masks."""
        if self.modality:
            m = self.modality
            assert self.augment is not None
            x = {m: batch.inputs[m]}
            views = {v: (m, self.augment(x)[m]) for v in _VIEWS}
            return views, {v: batch.present[m] for v in _VIEWS}
        inputs = self.augment(batch.inputs) if self.augment is not None else batch.inputs
        return {m: (m, inputs[m]) for m in inputs}, dict(batch.present)

    @staticmethod
    def _embed(
        encoder: MultimodalEncoder, branches: Mapping[str, tuple[str, Tensor]]
    ) -> dict[str, Tensor]:
        out = {}
        for name, (m, x) in branches.items():
            out[name] = encoder.projections[m](encoder.encoders[m](x))
        return out

    def compute_loss(self, batch: MultimodalBatch, update_queue: bool = False) -> LossOutput:
        """The objective on one batch (and, for SLIP, the CLIP term)."""
        branches, present = self._branches(batch)
        z = self._embed(self.encoder, branches)
        if not getattr(self.objective, "takes_targets", False):
            out: LossOutput = self.objective(z, present)
        else:
            predicted = z
            if self.predictors is not None:
                predicted = {b: self.predictors[branches[b][0]](v) for b, v in z.items()}
            if self.target is not None:
                with torch.no_grad():
                    targets = self._embed(self.target, branches)
            else:
                targets = {b: v.detach() for b, v in z.items()}
            out = self.objective(predicted, targets, present)
            if update_queue and getattr(self.objective, "keeps_queue", False):
                self.objective.enqueue(targets, present)  # type: ignore[operator]
        if self.clip is not None and self.clip_projections is not None:
            reps = self.encoder(batch.inputs)
            clip_z = {m: self.clip_projections[m](r) for m, r in reps.items()}
            clip_out = self.clip(clip_z, batch.present)
            terms = {"ssl": out.loss, "clip": clip_out.loss}
            out = LossOutput(out.loss + self.clip_weight * clip_out.loss, terms, out.num_rows)
        return out

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """The loss; a training step also enqueues MoCo's keys."""
        return self.compute_loss(batch, update_queue=stage == "train")

    def logged_terms(self, out: LossOutput) -> dict[str, Tensor]:
        """The terms without per-pair details (names with ``/``)."""
        return {k: v for k, v in out.terms.items() if "/" not in k}

    @torch.no_grad()
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """Move the target network towards the online one (EMA)."""
        if self.target is None:
            return
        for t, o in zip(self.target.parameters(), self.encoder.parameters()):
            t.lerp_(o.detach(), 1.0 - self.momentum)
        for target_buffer, buffer in zip(self.target.buffers(), self.encoder.buffers()):
            target_buffer.copy_(buffer)

    def optimized_parameters(self) -> list[nn.Parameter]:
        """Everything that learns (not the EMA target)."""
        return [p for n, p in self.named_parameters() if not n.startswith("target.")]


# builders -----------------------------------------------------------------------------------


def _heads(names: Any, in_dim: int, out_dim: int, hidden: int) -> nn.ModuleDict:
    return nn.ModuleDict({m: ProjectionHead(in_dim, out_dim, hidden) for m in names})


def _augment(example: MultimodalBatch | None, enabled: bool, seed: int) -> ModalityAugment | None:
    if not enabled:
        return None
    if example is None:
        raise ValueError("Augmentations need an example batch to choose per-modality defaults.")
    return ModalityAugment.default(example.inputs, seed=seed)


def _branch_modalities(encoder: MultimodalEncoder, modality: str) -> list[str]:
    return [modality] if modality else list(encoder.modalities)


def _siamese(
    encoder: MultimodalEncoder,
    objective: nn.Module,
    heads: tuple[int, int, int],
    example: MultimodalBatch | None,
    seed: int,
    *,
    modality: str,
    augment: bool,
    lr: float,
    weight_decay: float,
    predict: bool = False,
    momentum: float = 0.0,
    clip_temperature: float | None = None,
    clip_weight: float = 1.0,
) -> SiameseMethod:
    """The wiring every recipe here shares, in one order (seeded initialisation depends on it).

    Projection heads ``heads = (in, out, hidden)`` on the branches (one modality's views, or
    every modality), predictors of the same shape if ``predict``, linear CLIP heads on every
    modality if ``clip_temperature`` is given (SLIP), the augmentations, and the method.
    """
    names = _branch_modalities(encoder, modality)
    encoder.projections = _heads(names, *heads)
    predictors = _heads(names, heads[1], heads[1], heads[2]) if predict else None
    clip: dict[str, Any] = {}
    if clip_temperature is not None:
        clip_heads = _heads(encoder.modalities, heads[0], heads[1], 0)
        clip = {"clip": CLIPLoss(clip_temperature), "clip_projections": clip_heads}
        clip["clip_weight"] = clip_weight
    view = _augment(example, augment, seed)
    return SiameseMethod(
        encoder, objective, modality, view, predictors, momentum, lr, weight_decay, **clip
    )


@METHODS.register("simclr")
def build_simclr(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    temperature: float = 0.2,
    proj_dim: int = 64,
    proj_hidden: int = 128,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """SimCLR NT-Xent: two augmented views of one modality, or across modalities (ICML 2020).

    Args:
        temperature: NT-Xent softmax temperature.
    """
    heads = (embed_dim, proj_dim, proj_hidden)
    return _siamese(
        encoder, NTXentLoss(temperature), heads, example, seed,
        modality=modality, augment=augment, lr=lr, weight_decay=weight_decay,
    )  # fmt: skip


@METHODS.register("slip")
def build_slip(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    temperature: float = 0.2,
    clip_temperature: float = 0.07,
    clip_weight: float = 1.0,
    proj_dim: int = 64,
    proj_hidden: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """SLIP: CLIP across modalities plus SimCLR within one modality (Mu et al., ECCV 2022).

    Args:
        modality: The modality of the SimCLR term (two augmented views); ``""``: the first.
        temperature: Temperature of the SimCLR (NT-Xent) term.
        clip_temperature: Temperature of the CLIP term.
        clip_weight: Weight of the CLIP term.
    """
    return _siamese(
        encoder, NTXentLoss(temperature), (embed_dim, proj_dim, proj_hidden), example, seed,
        modality=modality or encoder.modalities[0], augment=True, lr=lr,
        weight_decay=weight_decay, clip_temperature=clip_temperature, clip_weight=clip_weight,
    )  # fmt: skip


@METHODS.register("moco")
def build_moco(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    version: Literal["v2", "v3"] = "v2",
    queue_size: int = 1024,
    temperature: float = 0.2,
    momentum: float = 0.99,
    proj_dim: int = 64,
    proj_hidden: int = 128,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """MoCo: momentum encoder with a queue of negatives (v2) or a predictor (v3), per modality.

    Args:
        version: ``v2``: a queue of negatives; ``v3``: a predictor, negatives from the batch.
        queue_size: Keys per modality queue (v2).
        temperature: InfoNCE softmax temperature.
        momentum: EMA momentum of the key encoder.
    """
    if version not in ("v2", "v3"):
        raise ValueError(f"method.version={version!r} is unknown; valid: 'v2', 'v3'.")
    names = _branch_modalities(encoder, modality)
    loss = MoCoLoss(names, proj_dim, queue_size if version == "v2" else 0, temperature, seed=seed)
    return _siamese(
        encoder, loss, (embed_dim, proj_dim, proj_hidden), example, seed,
        modality=modality, augment=augment, lr=lr, weight_decay=weight_decay,
        predict=version == "v3", momentum=momentum,
    )  # fmt: skip


@METHODS.register("byol")
def build_byol(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    momentum: float = 0.99,
    proj_dim: int = 64,
    proj_hidden: int = 128,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """BYOL: predictor + EMA target, no negatives (Grill et al., NeurIPS 2020).

    Args:
        momentum: EMA momentum of the target network.
        proj_hidden: Hidden width of the two-layer projection head and predictor (0: linear).
    """
    return _siamese(
        encoder, BYOLLoss("byol"), (embed_dim, proj_dim, proj_hidden), example, seed,
        modality=modality, augment=augment, lr=lr, weight_decay=weight_decay,
        predict=True, momentum=momentum,
    )  # fmt: skip


@METHODS.register("simsiam")
def build_simsiam(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    proj_dim: int = 64,
    proj_hidden: int = 128,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """SimSiam: predictor + stop-gradient, no EMA and no negatives (Chen & He, CVPR 2021).

    Args:
        proj_hidden: Hidden width of the two-layer projection head and predictor (0: linear).
    """
    return _siamese(
        encoder, BYOLLoss("simsiam"), (embed_dim, proj_dim, proj_hidden), example, seed,
        modality=modality, augment=augment, lr=lr, weight_decay=weight_decay, predict=True,
    )  # fmt: skip


@METHODS.register("vicreg")
def build_vicreg(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    proj_dim: int = 128,
    proj_hidden: int = 256,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """VICReg: variance-invariance-covariance regularisation (Bardes et al., ICLR 2022).

    Args:
        invariance_weight: Weight of the invariance (mean squared distance) term.
        variance_weight: Weight of the variance (hinge on each dimension's std) term.
        covariance_weight: Weight of the covariance (off-diagonal) term.
    """
    loss = VICRegLoss(invariance_weight, variance_weight, covariance_weight)
    return _siamese(
        encoder, loss, (embed_dim, proj_dim, proj_hidden), example, seed,
        modality=modality, augment=augment, lr=lr, weight_decay=weight_decay,
    )  # fmt: skip


@METHODS.register("barlow")
def build_barlow(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    example: MultimodalBatch | None = None,
    seed: int = 0,
    *,
    modality: str = "",
    redundancy_weight: float = 5e-3,
    proj_dim: int = 128,
    proj_hidden: int = 256,
    augment: bool = True,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> SiameseMethod:
    """Barlow Twins: cross-correlation towards identity (Zbontar et al., ICML 2021).

    Args:
        redundancy_weight: Weight of the off-diagonal (redundancy reduction) term.
    """
    return _siamese(
        encoder, BarlowTwinsLoss(redundancy_weight), (embed_dim, proj_dim, proj_hidden), example,
        seed, modality=modality, augment=augment, lr=lr, weight_decay=weight_decay,
    )  # fmt: skip
