"""Losses robust to misaligned pairs and wrong labels, and small-loss sample selection.

* :func:`rince_loss` — Robust InfoNCE (Chuang, Hjelm, Wang, Vineet, Joshi, Torralba, Jegelka &
  Song, "Robust Contrastive Learning against Noisy Views", CVPR 2022), cross-modal and
  symmetric, for pairs of which some are not true pairs.
* :func:`pairwise_info_nce` — the per-pair InfoNCE losses, for small-loss pair filtering.
* :func:`generalized_cross_entropy` — GCE (Zhang & Sabuncu, "Generalized Cross Entropy Loss for
  Training Deep Neural Networks with Noisy Labels", NeurIPS 2018).
* :func:`symmetric_cross_entropy` — SCE (Wang, Ma, Chen, Luo, Yi & Bailey, "Symmetric Cross
  Entropy for Robust Learning with Noisy Labels", ICCV 2019).
* :func:`small_loss_selection` — keep the samples with the smallest losses (the "small-loss
  trick" of Co-teaching: Han et al., NeurIPS 2018), flag the others.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.distributed import gather_mapping
from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = [
    "GCELoss",
    "RINCELoss",
    "SCELoss",
    "generalized_cross_entropy",
    "pairwise_info_nce",
    "rince_loss",
    "rince_pair",
    "small_loss_selection",
    "symmetric_cross_entropy",
]


def _check_q(q: float, low_inclusive: bool = False) -> None:
    if not (0 < q <= 1 or (low_inclusive and q == 0)):
        raise ValueError(f"Illegal q={q}: it must lie in (0, 1].")


def rince_pair(
    embeddings_a: Tensor, embeddings_b: Tensor, logit_scale: float, q: float, lam: float
) -> Tensor:
    """Per-row symmetric RINCE between two aligned, L2-normalised embedding sets.

    For row ``i`` of the ``a → b`` direction with scores ``s_ij = logit_scale · a_i·b_j``:
    ``-exp(q s_ii) / q + (lam · sum_j exp(s_ij))^q / q``; the ``b → a`` direction likewise
    with the transposed scores; the two are averaged. As ``q → 0`` this tends to InfoNCE plus
    ``log(lam)``; ``q = 1`` gives the bounded loss of Chuang et al. (2022, eq. 5), whose small
    weight on hard positives makes it robust to false pairs.

    Args:
        embeddings_a: ``[N, D]``, row ``i`` paired with row ``i`` of ``embeddings_b``.
        embeddings_b: ``[N, D]``.
        logit_scale: ``1 / temperature``.
        q: Robustness in ``(0, 1]``.
        lam: Weight ``lambda > 0`` of the partition term (the paper's density weighting).

    Returns:
        ``[N]`` per-row losses.

    Example:
        >>> z = torch.eye(2)
        >>> # q = 1, lam = 1: -e^1 + (e^1 + e^0), in both directions
        >>> [round(v, 4) for v in rince_pair(z, z, 1.0, q=1.0, lam=1.0).tolist()]
        [1.0, 1.0]
    """
    _check_q(q)
    if lam <= 0:
        raise ValueError(f"Illegal lam={lam}: it must be positive.")
    logits = logit_scale * embeddings_a @ embeddings_b.t()
    losses = []
    for scores in (logits, logits.t()):
        positive = scores.diagonal()
        # (lam * sum_j e^{s_ij})^q = exp(q * (log lam + logsumexp_j s_ij)), computed stably.
        partition = torch.exp(q * (math.log(lam) + torch.logsumexp(scores, dim=1)))
        losses.append(-torch.exp(q * positive) / q + partition / q)
    return 0.5 * (losses[0] + losses[1])


def rince_loss(
    embeddings: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    logit_scale: float,
    q: float = 0.5,
    lam: float = 0.01,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> LossOutput:
    """RINCE over modality pairs, counting only rows where both modalities are present.

    Args:
        embeddings: Modality → ``[B, D]`` (L2-normalised inside).
        present: Modality → ``[B]`` bool.
        logit_scale: ``1 / temperature``.
        q: Robustness in ``(0, 1]`` (Chuang et al. use 0.1-1.0; larger is more robust).
        lam: Partition weight (the paper's default 0.01).
        pairs: Modality pairs; default all unordered pairs.

    Returns:
        Mean over pairs of the mean per-row loss (terms detached), and each pair's row count.

    Example:
        >>> z = {"a": torch.eye(2), "b": torch.eye(2)}
        >>> p = {k: torch.ones(2, dtype=torch.bool) for k in z}
        >>> round(rince_loss(z, p, 1.0, q=1.0, lam=1.0).loss.item(), 4)
        1.0
    """
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError(f"rince_loss needs at least two modalities, got {names}.")
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    terms: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for a, b in pairs:
        rows = present[a] & present[b]
        if int(rows.sum()) < 2:
            continue
        # Present rows first, then normalise: an absent row never enters the graph.
        za = F.normalize(embeddings[a][rows], dim=-1)
        zb = F.normalize(embeddings[b][rows], dim=-1)
        per_row = rince_pair(za, zb, logit_scale, q, lam)
        terms[f"{a}~{b}"] = per_row.mean()
        counts[f"{a}~{b}"] = per_row.shape[0]
    if terms:
        loss = torch.stack(list(terms.values())).mean()
    else:
        loss = zero_like_graph(*embeddings.values())
    return LossOutput(loss, {k: v.detach() for k, v in terms.items()}, counts)


def pairwise_info_nce(embeddings_a: Tensor, embeddings_b: Tensor, logit_scale: float) -> Tensor:
    """Per-pair symmetric InfoNCE losses ``[N]`` (their mean is CLIP's loss).

    Args:
        embeddings_a: ``[N, D]`` L2-normalised.
        embeddings_b: ``[N, D]`` L2-normalised.
        logit_scale: ``1 / temperature``.

    Returns:
        ``[N]``: ``(CE(row i of S) + CE(column i of S)) / 2``.

    Example:
        >>> round(pairwise_info_nce(torch.eye(3), torch.eye(3), 1.0)[0].item(), 4)
        0.5514
    """
    logits = logit_scale * embeddings_a @ embeddings_b.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (
        F.cross_entropy(logits, target, reduction="none")
        + F.cross_entropy(logits.t(), target, reduction="none")
    )


def small_loss_selection(losses: Tensor, keep_fraction: float) -> Tensor:
    """Keep the ``keep_fraction`` of samples with the smallest losses.

    The count kept is ``ceil(keep_fraction · N)`` (at least one). Ties are broken by index
    (a stable sort), so the selection is deterministic.

    Args:
        losses: ``[N]`` per-sample losses.
        keep_fraction: In ``(0, 1]``.

    Returns:
        ``[N]`` bool mask of the kept samples (``~mask`` are the flagged ones).

    Example:
        >>> small_loss_selection(torch.tensor([0.1, 5.0, 0.3, 2.0]), 0.5).tolist()
        [True, False, True, False]
    """
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction={keep_fraction} must lie in (0, 1].")
    if losses.dim() != 1:
        raise ValueError(f"losses must be 1-D [N], got shape {tuple(losses.shape)}.")
    n = losses.shape[0]
    keep = max(1, math.ceil(keep_fraction * n - 1e-9)) if n else 0
    order = torch.sort(losses.detach(), stable=True).indices[:keep]
    mask = torch.zeros(n, dtype=torch.bool, device=losses.device)
    mask[order] = True
    return mask


def _check_classification(logits: Tensor, label: Tensor) -> None:
    if logits.dim() != 2 or label.shape != logits.shape[:1]:
        raise ValueError(
            f"logits must be [B, C] and label [B]; got {tuple(logits.shape)} and "
            f"{tuple(label.shape)}."
        )


def generalized_cross_entropy(
    logits: Tensor, label: Tensor, q: float = 0.7, reduction: str = "mean"
) -> Tensor:
    """GCE: ``(1 - p_y^q) / q`` (Zhang & Sabuncu, NeurIPS 2018).

    ``q → 0`` recovers cross-entropy, ``q = 1`` the mean absolute error (robust to symmetric
    label noise); the paper uses ``q = 0.7``.

    Args:
        logits: ``[B, C]``.
        label: ``[B]``.
        q: In ``(0, 1]``.
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"``.

    Example:
        >>> logits = torch.log(torch.tensor([[0.25, 0.75]]))
        >>> round(generalized_cross_entropy(logits, torch.tensor([1]), q=1.0).item(), 4)
        0.25
    """
    _check_q(q)
    _check_classification(logits, label)
    p_y = F.softmax(logits, dim=-1).gather(1, label.view(-1, 1)).squeeze(1)
    losses = (1.0 - p_y.clamp_min(1e-12) ** q) / q
    return _reduce(losses, reduction)


def symmetric_cross_entropy(
    logits: Tensor,
    label: Tensor,
    alpha: float = 0.1,
    beta: float = 1.0,
    log_zero: float = -4.0,
    reduction: str = "mean",
) -> Tensor:
    """SCE: ``alpha · CE + beta · RCE`` (Wang et al., ICCV 2019).

    The reverse cross-entropy ``RCE = -sum_k p_k log q_k`` swaps prediction ``p`` and one-hot
    label ``q``; ``log 0`` is clipped to ``log_zero`` (the paper's ``A = -4``), so
    ``RCE = -log_zero · (1 - p_y)``.

    Args:
        logits: ``[B, C]``.
        label: ``[B]``.
        alpha: Weight of cross-entropy.
        beta: Weight of reverse cross-entropy.
        log_zero: The clipped value of ``log 0`` (negative).
        reduction: ``"mean"`` or ``"none"``.

    Returns:
        Scalar, or ``[B]`` for ``reduction="none"``.

    Example:
        >>> logits = torch.log(torch.tensor([[0.5, 0.5]]))
        >>> # 0 * CE + 1 * (4 * (1 - 0.5))
        >>> symmetric_cross_entropy(logits, torch.tensor([0]), alpha=0.0, beta=1.0).item()
        2.0
    """
    if alpha < 0 or beta < 0 or alpha + beta == 0:
        raise ValueError(f"SCE needs alpha, beta >= 0, not both zero; got {alpha}, {beta}.")
    if log_zero >= 0:
        raise ValueError(f"log_zero={log_zero} must be negative (the paper uses -4).")
    _check_classification(logits, label)
    ce = F.cross_entropy(logits, label, reduction="none")
    p = F.softmax(logits, dim=-1)
    one_hot = F.one_hot(label, logits.shape[1]).to(p.dtype)
    log_q = torch.where(one_hot > 0, torch.zeros_like(p), torch.full_like(p, log_zero))
    rce = -(p * log_q).sum(dim=1)
    return _reduce(alpha * ce + beta * rce, reduction)


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "none":
        return losses
    raise ValueError(f"Unknown reduction {reduction!r}; valid: 'mean', 'none'.")


@OBJECTIVES.register("rince")
class RINCELoss(nn.Module):
    """Robust InfoNCE over all modality pairs (Chuang et al., CVPR 2022).

    Args:
        temperature: Fixed temperature.
        q: Robustness in ``(0, 1]``.
        lam: Partition weight.
        gather_distributed: Gather embeddings (with gradients) and masks across processes,
            so that the partition term sums over the global batch under DDP.

    Example:
        >>> loss = RINCELoss(temperature=1.0, q=1.0, lam=1.0)
        >>> z = {"a": torch.eye(2), "b": torch.eye(2)}
        >>> round(loss(z, {k: torch.ones(2, dtype=torch.bool) for k in z}).loss.item(), 4)
        1.0
    """

    def __init__(
        self,
        temperature: float = 0.1,
        q: float = 0.5,
        lam: float = 0.01,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        _check_q(q)
        if lam <= 0:
            raise ValueError(f"Illegal lam={lam}: it must be positive.")
        self.logit_scale = 1.0 / temperature
        self.q = q
        self.lam = lam
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> LossOutput:
        """Loss of ``{m: [B, D]}`` with ``{m: [B]}`` presence masks."""
        if self.gather_distributed:
            embeddings = gather_mapping(embeddings)
            present = gather_mapping(present)
        return rince_loss(embeddings, present, self.logit_scale, self.q, self.lam)


@OBJECTIVES.register("gce")
class GCELoss(nn.Module):
    """Generalised cross-entropy over observed labels (Zhang & Sabuncu, NeurIPS 2018).

    Example:
        >>> GCELoss(q=1.0)(torch.zeros(2, 2), torch.tensor([0, 1])).loss.item()
        0.5
    """

    def __init__(self, q: float = 0.7) -> None:
        super().__init__()
        _check_q(q)
        self.q = q

    @full_precision
    def forward(self, logits: Tensor, label: Tensor, observed: Tensor | None = None) -> LossOutput:
        """Mean GCE of ``[B, C]`` logits against ``[B]`` labels on the ``observed`` rows."""
        return _observed_loss(
            "gce", logits, label, observed, lambda x, y: generalized_cross_entropy(x, y, self.q)
        )


@OBJECTIVES.register("sce")
class SCELoss(nn.Module):
    """Symmetric cross-entropy (Wang et al., ICCV 2019).

    Example:
        >>> round(SCELoss(alpha=1.0, beta=0.0)(torch.zeros(1, 2), torch.tensor([0])).loss.item(), 4)
        0.6931
    """

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, log_zero: float = -4.0) -> None:
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta == 0:
            raise ValueError(f"SCE needs alpha, beta >= 0, not both zero; got {alpha}, {beta}.")
        self.alpha, self.beta, self.log_zero = alpha, beta, log_zero

    @full_precision
    def forward(self, logits: Tensor, label: Tensor, observed: Tensor | None = None) -> LossOutput:
        """Mean SCE of ``[B, C]`` logits against ``[B]`` labels on the ``observed`` rows."""
        return _observed_loss(
            "sce",
            logits,
            label,
            observed,
            lambda x, y: symmetric_cross_entropy(x, y, self.alpha, self.beta, self.log_zero),
        )


def _observed_loss(
    name: str,
    logits: Tensor,
    label: Tensor,
    observed: Tensor | None,
    fn: Callable[[Tensor, Tensor], Tensor],
) -> LossOutput:
    """``fn`` (GCE or SCE) over the ``observed`` rows (default: all), as term ``name``."""
    rows = torch.ones_like(label, dtype=torch.bool) if observed is None else observed
    count = int(rows.sum())
    if count == 0:
        zero = zero_like_graph(logits)
        return LossOutput(zero, {name: zero.detach()}, {name: 0})
    loss = fn(logits[rows], label[rows])
    return LossOutput(loss, {name: loss.detach()}, {name: count})
