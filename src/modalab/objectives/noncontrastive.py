"""Objectives without negatives: BYOL, SimSiam, VICReg and Barlow Twins.

* BYOL — Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
  Learning", NeurIPS 2020: ``2 - 2 cos(p_a, sg(z'_b))`` with ``p`` an online prediction and
  ``z'`` a momentum (EMA) target.
* SimSiam — Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021:
  ``-cos(p_a, sg(z_b))`` with the target from the same (online) network.
* VICReg — Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
  Self-Supervised Learning", ICLR 2022.
* Barlow Twins — Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning
  via Redundancy Reduction", ICML 2021.

Each term of a pair ``(a, b)`` uses the rows where both branches are present. VICReg and
Barlow Twins compute batch statistics (variance, covariance, cross-correlation); under DDP
their modules gather the embeddings from every process with gradients first, so that the
statistics are those of the global batch, as a single process holding it would compute them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.distributed import gather_mapping
from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = [
    "BYOLLoss",
    "BarlowTwinsLoss",
    "VICRegLoss",
    "barlow_twins_loss",
    "byol_loss",
    "simsiam_loss",
    "vicreg_loss",
]


def byol_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """BYOL regression loss ``mean_i (2 - 2 cos(p_i, sg(t_i)))``.

    Args:
        prediction: ``[N, D]`` online predictions.
        target: ``[N, D]`` targets (gradient stopped here).

    Returns:
        Scalar in ``[0, 4]``.

    Example:
        >>> byol_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 3.0]])).item()
        2.0
    """
    cos = F.cosine_similarity(prediction, target.detach(), dim=-1)
    return (2 - 2 * cos).mean()


def simsiam_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """SimSiam's negative cosine similarity ``-mean_i cos(p_i, sg(z_i))``.

    Example:
        >>> round(simsiam_loss(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]])).item(), 4)
        -1.0
    """
    return -F.cosine_similarity(prediction, target.detach(), dim=-1).mean()


_PREDICTIVE = {"byol": byol_loss, "simsiam": simsiam_loss}


@OBJECTIVES.register("byol")
class BYOLLoss(nn.Module):
    """Symmetric BYOL (Grill et al., NeurIPS 2020) or SimSiam (Chen & He, CVPR 2021) loss.

    For a pair ``(a, b)``: ``(ℓ(p_a, t_b) + ℓ(p_b, t_a)) / 2`` over jointly present rows,
    with ``t`` the momentum target (BYOL) or the online projection (SimSiam).

    Args:
        variant: ``"byol"`` or ``"simsiam"``.

    Example:
        >>> loss = BYOLLoss("byol")
        >>> p = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[1.0, 0.0]])}
        >>> t = {"a": torch.tensor([[0.0, 1.0]]), "b": torch.tensor([[1.0, 0.0]])}
        >>> m = {k: torch.ones(1, dtype=torch.bool) for k in p}
        >>> loss(p, t, m).loss.item()  # (2 + 0) / 2
        1.0
    """

    #: Compares predictions with targets: ``forward(predictions, targets, present)``.
    takes_targets: ClassVar[bool] = True

    def __init__(self, variant: str = "byol") -> None:
        super().__init__()
        if variant not in _PREDICTIVE:
            raise ValueError(f"Unknown variant {variant!r}; valid: {sorted(_PREDICTIVE)}.")
        self.variant = variant
        self.fn = _PREDICTIVE[variant]

    @full_precision
    def forward(
        self,
        predictions: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> LossOutput:
        """Loss of ``{branch: [B, D]}`` predictions and targets."""
        names = list(predictions)
        pairs = list(itertools.combinations(names, 2)) if pairs is None else list(pairs)
        terms: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for a, b in pairs:
            rows = present[a] & present[b]
            count = int(rows.sum())
            if count == 0:
                continue
            key = f"{a}~{b}"
            terms[key] = 0.5 * (
                self.fn(predictions[a][rows], targets[b][rows])
                + self.fn(predictions[b][rows], targets[a][rows])
            )
            counts[key] = count
        if not terms:
            return LossOutput(zero_like_graph(*predictions.values()))
        return LossOutput(torch.stack(list(terms.values())).mean(), terms, counts)


def _off_diagonal(matrix: Tensor) -> Tensor:
    return matrix - torch.diag_embed(torch.diagonal(matrix))


def vicreg_loss(
    embeddings_a: Tensor,
    embeddings_b: Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    eps: float = 1e-4,
) -> LossOutput:
    """VICReg of two aligned embedding sets (Bardes, Ponce & LeCun, ICLR 2022).

    ``λ·MSE(a, b) + μ·[v(a) + v(b)]/2 + ν·[c(a) + c(b)]`` with
    ``v(x) = mean_d relu(1 - sqrt(Var(x_d) + ε))`` and ``c(x) = Σ_{d≠e} C(x)_{de}² / D``,
    where variance and covariance ``C`` are unbiased (divided by ``N - 1``).

    Args:
        embeddings_a: ``[N, D]`` with ``N >= 2``.
        embeddings_b: ``[N, D]``.
        invariance_weight: ``λ``.
        variance_weight: ``μ``.
        covariance_weight: ``ν``.
        eps: Numerical floor inside the square root.

    Returns:
        Total and the terms ``invariance``, ``variance``, ``covariance`` (unweighted).

    Example:
        >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
        >>> out = vicreg_loss(z, z, eps=0.0)
        >>> [round(out.terms[k].item(), 4) for k in ("invariance", "variance", "covariance")]
        [0.0, 0.5, 0.0]
    """
    n = embeddings_a.shape[0]
    if n < 2:
        raise ValueError(f"vicreg_loss needs at least 2 rows for a variance, got {n}.")
    invariance = F.mse_loss(embeddings_a, embeddings_b)
    variance = embeddings_a.new_zeros(())
    covariance = embeddings_a.new_zeros(())
    for x in (embeddings_a, embeddings_b):
        x = x - x.mean(dim=0)
        std = torch.sqrt(x.var(dim=0) + eps)
        variance = variance + F.relu(1 - std).mean() / 2
        cov = x.t() @ x / (n - 1)
        covariance = covariance + _off_diagonal(cov).pow(2).sum() / x.shape[1]
    total = (
        invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    )
    return LossOutput(
        total,
        {"invariance": invariance, "variance": variance, "covariance": covariance},
        {"invariance": n},
    )


def barlow_twins_loss(
    embeddings_a: Tensor, embeddings_b: Tensor, redundancy_weight: float = 5e-3, eps: float = 1e-5
) -> LossOutput:
    """Barlow Twins of two aligned embedding sets (Zbontar et al., ICML 2021).

    With each dimension standardised over the batch (biased std, as ``BatchNorm1d`` without
    affine), ``C = A^T B / N`` and the loss is
    ``Σ_d (1 - C_dd)² + λ Σ_{d≠e} C_de²``.

    Args:
        embeddings_a: ``[N, D]`` with ``N >= 2``.
        embeddings_b: ``[N, D]``.
        redundancy_weight: ``λ``.
        eps: Added to the variance before standardising.

    Returns:
        Total and the terms ``invariance`` (on-diagonal) and ``redundancy`` (off-diagonal).

    Example:
        >>> z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
        >>> out = barlow_twins_loss(z, z, redundancy_weight=1.0, eps=0.0)
        >>> [round(out.terms[k].item(), 4) for k in ("invariance", "redundancy")]
        [0.0, 2.0]
    """
    n = embeddings_a.shape[0]
    if n < 2:
        raise ValueError(f"barlow_twins_loss needs at least 2 rows, got {n}.")

    def standardise(x: Tensor) -> Tensor:
        return (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + eps)

    c = standardise(embeddings_a).t() @ standardise(embeddings_b) / n
    invariance = (1 - torch.diagonal(c)).pow(2).sum()
    redundancy = _off_diagonal(c).pow(2).sum()
    total = invariance + redundancy_weight * redundancy
    return LossOutput(total, {"invariance": invariance, "redundancy": redundancy}, {"pairs": n})


class _PairStatisticLoss(nn.Module):
    """Shared wrapper: gather, pick jointly present rows, average a statistic loss over pairs."""

    def __init__(self, gather_distributed: bool) -> None:
        super().__init__()
        self.gather_distributed = gather_distributed

    def pair_loss(self, a: Tensor, b: Tensor) -> LossOutput:
        raise NotImplementedError

    @full_precision
    def forward(
        self,
        embeddings: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> LossOutput:
        """Mean over pairs of ``{branch: [B, D]}`` with ``{branch: [B]}`` masks."""
        if self.gather_distributed:
            embeddings = gather_mapping(embeddings)
            present = gather_mapping(present)
        names = list(embeddings)
        if len(names) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two branches, got {names}.")
        pairs = list(itertools.combinations(names, 2)) if pairs is None else list(pairs)
        totals: list[Tensor] = []
        terms: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for a, b in pairs:
            rows = present[a] & present[b]
            count = int(rows.sum())
            if count < 2:
                continue
            out = self.pair_loss(embeddings[a][rows], embeddings[b][rows])
            key = f"{a}~{b}"
            totals.append(out.loss)
            terms[key] = out.loss
            terms.update({f"{key}/{name}": value for name, value in out.terms.items()})
            counts[key] = count
        if not totals:
            return LossOutput(zero_like_graph(*embeddings.values()))
        return LossOutput(torch.stack(totals).mean(), terms, counts)


@OBJECTIVES.register("vicreg")
class VICRegLoss(_PairStatisticLoss):
    """VICReg over pairs of branches, with global-batch statistics (Bardes et al., ICLR 2022).

    Args:
        invariance_weight: ``λ`` (paper: 25).
        variance_weight: ``μ`` (paper: 25).
        covariance_weight: ``ν`` (paper: 1).
        gather_distributed: Gather embeddings from every process (with gradients) first.

    Example:
        >>> z = {"a": torch.tensor([[1.0, 0.0], [-1.0, 0.0]])}
        >>> z["b"] = z["a"].clone()
        >>> p = {k: torch.ones(2, dtype=torch.bool) for k in z}
        >>> round(VICRegLoss(1, 1, 1)(z, p).loss.item(), 3)  # variance term of dim 2
        0.495
    """

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__(gather_distributed)
        self.weights = (invariance_weight, variance_weight, covariance_weight)

    def pair_loss(self, a: Tensor, b: Tensor) -> LossOutput:
        """VICReg of one pair."""
        return vicreg_loss(a, b, *self.weights)


@OBJECTIVES.register("barlow_twins")
class BarlowTwinsLoss(_PairStatisticLoss):
    """Barlow Twins over pairs of branches, with global-batch statistics (Zbontar et al., 2021).

    Args:
        redundancy_weight: ``λ`` of the off-diagonal term (paper: 5e-3).
        gather_distributed: Gather embeddings from every process (with gradients) first.

    Example:
        >>> z = {"a": torch.tensor([[1.0, 1.0], [-1.0, -1.0]])}
        >>> z["b"] = z["a"].clone()
        >>> p = {k: torch.ones(2, dtype=torch.bool) for k in z}
        >>> round(BarlowTwinsLoss(1.0)(z, p).loss.item(), 3)
        2.0
    """

    def __init__(self, redundancy_weight: float = 5e-3, gather_distributed: bool = True) -> None:
        super().__init__(gather_distributed)
        self.redundancy_weight = redundancy_weight

    def pair_loss(self, a: Tensor, b: Tensor) -> LossOutput:
        """Barlow Twins of one pair."""
        return barlow_twins_loss(a, b, self.redundancy_weight)
