"""Late fusion under modality imbalance: OGM-GE gradient modulation and gradient blending.

The fused classifier is linear over the concatenated embeddings, so its logits are a sum of
per-modality contributions ``W_m h_m + b / M`` — the decomposition OGM-GE reads its
per-modality scores from (Peng et al., CVPR 2022). Optional unimodal auxiliary heads add
unimodal losses weighted by fixed weights or by online gradient blending (Wang, Tran &
Feiszli, "What Makes Training Multi-modal Classification Networks Hard?", CVPR 2020).

Per-modality learning curves are logged every epoch: ``train/acc_<m>`` and ``val/acc_<m>``
(accuracy of modality ``m``'s contribution alone), ``train/score_<m>`` and
``train/coeff_<m>`` (OGM-GE), ``val/aux_acc_<m>`` and ``train/blend_<head>`` (blending); they
land in the run's ``logs/metrics.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Literal

import torch
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import ClassifierMethod
from modalab.methods.registry import METHODS
from modalab.methods.tricks import (
    gaussian_enhanced_gradients,
    gradient_blend_weights,
    modality_scores,
    ogm_ge_coefficients,
)
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.output import LossOutput
from modalab.objectives.supervised import masked_cross_entropy

__all__ = ["BLENDS", "MODULATIONS", "BalancedFusionMethod", "build_grad_blend", "build_ogm_ge"]

MODULATIONS = ("none", "ogm", "ogm_ge")
#: Which encoder parameters OGM(-GE) modulates (``method.modulated_params``).
MODULATED_PARAMS = ("all", "conv")


def modulated_parameters(encoder: nn.Module, which: str) -> list[nn.Parameter]:
    """The parameters of ``encoder`` that OGM(-GE) modulates: all, or its convolution weights.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.LazyLinear(4))
        >>> [tuple(p.shape) for p in modulated_parameters(net, "conv")]
        [(2, 1, 3, 3)]
    """
    if which == "all":
        return list(encoder.parameters())
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    weights = [m.weight for m in encoder.modules() if isinstance(m, convs)]
    return [w for w in weights if isinstance(w, nn.Parameter)]


BLENDS = ("none", "fixed", "ogb")
FUSED = "fused"


class BalancedFusionMethod(ClassifierMethod):
    """Linear late fusion with OGM-GE modulation and/or gradient-blended unimodal losses.

    Args:
        encoder: Per-modality encoders (at least two).
        num_classes: Number of classes.
        embed_dim: Encoder output dimension.
        modulation: ``"none"``, ``"ogm"`` (coefficients only) or ``"ogm_ge"`` (with Gaussian
            enhancement).
        alpha: OGM-GE modulation strength.
        modulation_start: First epoch with modulation.
        modulation_end: Epoch at which modulation stops (exclusive; ``-1``: never).
        modulated_params: ``"all"`` (every parameter of each encoder) or ``"conv"`` (only
            the weights of its convolutions, as the reference implementation does: it scales
            and perturbs the gradients whose tensor is 4-D, the conv kernels of its ResNet-18
            encoders; GeWu-Lab/OGM-GE_CVPR2022 ``main.py``, ``train_epoch``). Here any
            ``Conv1d/2d/3d`` weight counts; an encoder without convolutions is an error.
        ratio_offset: ``k = 1 - tanh(alpha · (rho - ratio_offset))`` for the dominant
            modality; ``0`` is the reference code's rule (:func:`ogm_ge_coefficients`).
        blend: ``"none"`` (fused loss only), ``"fixed"`` (fused + ``aux_weight`` × each unimodal
            loss) or ``"ogb"`` (weights re-estimated each epoch from train/val losses).
        aux_weight: Weight of each unimodal loss with ``blend="fixed"`` (and the initial weight
            with ``"ogb"``).
        lr: Learning rate.
        weight_decay: Weight decay.
        seed: Seed of the Gaussian enhancement noise (combined with the global step).
    """

    def __init__(
        self,
        encoder: MultimodalEncoder,
        num_classes: int,
        embed_dim: int,
        modulation: str = "ogm_ge",
        alpha: float = 0.5,
        modulation_start: int = 0,
        modulation_end: int = -1,
        blend: str = "none",
        aux_weight: float = 1.0,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
        modulated_params: str = "all",
        ratio_offset: float = 1.0,
    ) -> None:
        super().__init__()
        if modulated_params not in MODULATED_PARAMS:
            raise ValueError(
                f"method.modulated_params={modulated_params!r} is unknown; valid: "
                f"{list(MODULATED_PARAMS)}."
            )
        if modulation not in MODULATIONS:
            raise ValueError(
                f"method.modulation={modulation!r} is unknown; valid: {list(MODULATIONS)}."
            )
        if blend not in BLENDS:
            raise ValueError(f"method.blend={blend!r} is unknown; valid: {list(BLENDS)}.")
        if len(encoder.modalities) < 2:
            raise ValueError("Imbalance methods need at least two modalities.")
        if modulation != "none" and alpha <= 0:
            raise ValueError(f"method.alpha={alpha} must be positive.")
        self.encoder = encoder
        self.names = list(encoder.modalities)
        self.embed_dim = embed_dim
        self.head = nn.Linear(len(self.names) * embed_dim, num_classes)
        self.aux_heads = (
            nn.ModuleDict({m: nn.Linear(embed_dim, num_classes) for m in self.names})
            if blend != "none"
            else None
        )
        self.modulation, self.alpha, self.ratio_offset = modulation, alpha, ratio_offset
        self.modulated = {
            m: modulated_parameters(encoder.encoders[m], modulated_params) for m in self.names
        }
        if modulation != "none":
            bare = [m for m, params in self.modulated.items() if not params]
            if bare:
                raise ValueError(
                    f"method.modulated_params={modulated_params!r}: the {bare} encoder(s) have "
                    "no convolution to modulate; use modulated_params=all."
                )
        self.modulation_start, self.modulation_end = modulation_start, modulation_end
        self.blend, self.aux_weight = blend, aux_weight
        self.lr, self.weight_decay, self.seed = lr, weight_decay, seed
        heads = [FUSED, *self.names]
        self.blend_weights = {h: 1.0 if h == FUSED else aux_weight for h in heads}
        self._coefficients: dict[str, float] = {}
        self._epoch_losses: dict[str, dict[str, list[float]]] = {"train": {}, "val": {}}
        self._previous: dict[str, dict[str, float]] | None = None

    # ----------------------------------------------------------------- forward pieces
    def contributions(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each modality's additive share of the fused logits, ``W_m h_m + b / M`` (absent: b/M)."""
        shares = {}
        bias = self.head.bias / len(self.names)
        for i, m in enumerate(self.names):
            weight = self.head.weight[:, i * self.embed_dim : (i + 1) * self.embed_dim]
            h = embeddings[m] * present[m].unsqueeze(-1).to(embeddings[m].dtype)
            shares[m] = h @ weight.t() + bias
        return shares

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Fused class logits ``[B, C]``: the sum of the :meth:`contributions`."""
        return torch.stack(list(self.contributions(embeddings, present).values())).sum(0)

    # ----------------------------------------------------------------- training
    def _modulating(self) -> bool:
        epoch = int(self.current_epoch)
        end = self.modulation_end if self.modulation_end >= 0 else float("inf")
        return self.modulation != "none" and self.modulation_start <= epoch < end

    def _head_losses(
        self, batch: MultimodalBatch, label: Tensor, rows: Tensor
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, tuple[Tensor, Tensor]]]:
        """Per-head losses over ``rows``, the per-modality shares, and the logged views.

        Returns:
            ``(losses {head: scalar}, shares {m: [B, C]}, views {log name: (logits, rows)})``
            where the views are the fused logits (``acc``), each modality's share
            (``acc_<m>``) and each auxiliary head (``aux_acc_<m>``), with the rows where they
            are defined.
        """
        embeddings = self.encoder(batch.inputs)
        shares = self.contributions(embeddings, batch.present)
        fused = torch.stack(list(shares.values())).sum(0)
        losses = {FUSED: masked_cross_entropy(fused, label, rows)}
        everyone = torch.ones_like(rows)
        views = {"acc": (fused, everyone)}
        views.update({f"acc_{m}": (shares[m], batch.present[m]) for m in self.names})
        if self.aux_heads is not None:
            for m in self.names:
                aux = self.aux_heads[m](embeddings[m])
                views[f"aux_acc_{m}"] = (aux, batch.present[m])
                keep = rows & batch.present[m]
                if bool(keep.any()):
                    losses[m] = masked_cross_entropy(aux, label, keep)
        return losses, shares, views

    def _log_accuracies(
        self, stage: str, views: dict[str, tuple[Tensor, Tensor]], batch: MultimodalBatch
    ) -> None:
        for name, (logits, rows) in views.items():
            if bool(rows.any()):
                correct = logits[rows].argmax(1) == batch.clean_label[rows]
                self.log(
                    f"{stage}/{name}",
                    correct.float().mean(),
                    batch_size=int(rows.sum()),
                    on_step=False,
                    on_epoch=True,
                )

    def _record(self, stage: str, losses: dict[str, Tensor]) -> None:
        for head, value in losses.items():
            self._epoch_losses[stage].setdefault(head, []).append(float(value.detach()))

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """Training: weighted head losses, OGM-GE coefficients for the backward hook.

        Validation: the fused head's loss against the clean labels. Both log each head's loss
        (``loss_<head>``) and the per-view accuracies.
        """
        train = stage == "train"
        rows = batch.label_observed if train else torch.ones_like(batch.label, dtype=torch.bool)
        label = batch.label if train else batch.clean_label
        losses, shares, views = self._head_losses(batch, label, rows)
        self._record(stage, losses)
        self._log_accuracies(stage, views, batch)
        terms = {f"loss_{head}": value.detach() for head, value in losses.items()}
        if not train:
            return LossOutput(losses[FUSED], terms)
        total = sum(self.blend_weights[h] * v for h, v in losses.items())
        assert isinstance(total, Tensor)
        size = batch.batch_size
        if self._modulating() and bool(rows.any()):
            scores = modality_scores(shares, batch.label, rows)
            self._coefficients = ogm_ge_coefficients(scores, self.alpha, self.ratio_offset)
            terms.update({f"score_{m}": scores[m] / rows.sum() for m in self.names})
        else:
            self._coefficients = {}
        for m in self.names:
            coefficient = self._coefficients.get(m, 1.0)
            self.log(f"train/coeff_{m}", coefficient, batch_size=size, on_step=False, on_epoch=True)
        return LossOutput(total, terms)

    def on_after_backward(self) -> None:
        """Modulate each encoder's gradients by its OGM(-GE) coefficient."""
        if not self._coefficients:
            return
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(self.global_step))
        for m, k in self._coefficients.items():
            gaussian_enhanced_gradients(
                self.modulated[m],
                k,
                generator,
                enhance=self.modulation == "ogm_ge",
            )

    def on_validation_epoch_end(self) -> None:
        """Online gradient blending: re-estimate the head weights from this epoch's losses."""
        means = {
            stage: {h: sum(v) / len(v) for h, v in table.items() if v}
            for stage, table in self._epoch_losses.items()
        }
        self._epoch_losses = {"train": {}, "val": {}}
        heads = [h for h in self.blend_weights if h in means["train"] and h in means["val"]]
        if (
            self.blend == "ogb"
            and heads
            and self.trainer is not None
            and not self.trainer.sanity_checking
        ):
            current = {s: {h: means[s][h] for h in heads} for s in ("train", "val")}
            if self._previous is not None and set(self._previous["train"]) == set(heads):
                self.blend_weights.update(
                    gradient_blend_weights(
                        self._previous["train"],
                        current["train"],
                        self._previous["val"],
                        current["val"],
                    )
                )
            self._previous = current
        if self.blend != "none":
            for head, weight in self.blend_weights.items():
                self.log(f"train/blend_{head}", weight, on_step=False, on_epoch=True)


@METHODS.register("ogm_ge")
def build_ogm_ge(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    *,
    modulation: Literal["none", "ogm", "ogm_ge"] = "ogm_ge",
    alpha: float = 0.5,
    modulation_start: int = 0,
    modulation_end: int = -1,
    modulated_params: Literal["all", "conv"] = "all",
    ratio_offset: float = 1.0,
    blend: Literal["none", "fixed", "ogb"] = "none",
    aux_weight: float = 1.0,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> BalancedFusionMethod:
    """Linear late fusion with on-the-fly gradient modulation (OGM-GE, Peng et al. 2022).

    Args:
        encoder: Per-modality encoders (at least two).
        num_classes: Number of classes.
        modulation: ``none``, ``ogm`` (coefficients only) or ``ogm_ge`` (+ Gaussian noise).
        alpha: Modulation strength.
        modulation_start: First modulated epoch.
        modulation_end: Last modulated epoch (exclusive); -1: to the end.
        modulated_params: ``all`` encoder parameters or ``conv`` weights only (the reference).
        ratio_offset: ``k = 1 - tanh(alpha (rho - offset))``; 0: the reference code's rule.
        blend: ``none``, ``fixed`` or ``ogb`` (re-estimated) weights of unimodal auxiliary losses.
        aux_weight: Weight of each unimodal loss (``fixed``; the initial one with ``ogb``).
        seed: Seed of the Gaussian enhancement (the run's seed in a config: ``${seed}``).
    """
    return BalancedFusionMethod(
        encoder,
        num_classes,
        embed_dim,
        modulation,
        alpha,
        modulation_start,
        modulation_end,
        blend,
        aux_weight,
        lr,
        weight_decay,
        seed,
        modulated_params,
        ratio_offset,
    )


#: Gradient blending (Wang et al., CVPR 2020): OGM-GE's builder with other defaults.
build_grad_blend = METHODS.register(
    "grad_blend",
    "Late fusion + unimodal auxiliary losses, gradient-blended (Wang et al., CVPR 2020).",
)(partial(build_ogm_ge, modulation="none", blend="ogb"))
