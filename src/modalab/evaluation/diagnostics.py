"""Representation diagnostics: alignment, uniformity, modality gap, effective rank.

* Alignment and uniformity of L2-normalised embeddings: Wang & Isola, "Understanding
  Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere"
  (ICML 2020).
* Modality gap: the distance between the centroids of two modalities' normalised embeddings,
  Liang et al., "Mind the Gap: Understanding the Modality Gap in Multi-modal Contrastive
  Representation Learning" (NeurIPS 2022).
* Effective rank: ``exp`` of the Shannon entropy of the normalised singular values, Roy &
  Vetterli, "The Effective Rank: a Measure of Effective Dimensionality" (EUSIPCO 2007).

Every function takes plain tensors; those over pairs of modalities take the ``present`` masks
and use only the rows where both modalities are observed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.evaluation.features import MetricRecord

__all__ = [
    "alignment",
    "effective_rank",
    "modality_gap",
    "representation_diagnostics",
    "uniformity",
]


def _both(present_a: Tensor | None, present_b: Tensor | None, n: int) -> Tensor:
    rows = torch.ones(n, dtype=torch.bool)
    if present_a is not None:
        rows &= present_a.bool()
    if present_b is not None:
        rows &= present_b.bool()
    return rows


def alignment(
    embeddings_a: Tensor,
    embeddings_b: Tensor,
    present_a: Tensor | None = None,
    present_b: Tensor | None = None,
    alpha: float = 2.0,
) -> float:
    """Alignment ``E ||f(a) - f(b)||_2 ** alpha`` over positive pairs (lower is better).

    Embeddings are L2-normalised first; only rows where both modalities are present count.

    Args:
        embeddings_a: ``[N, D]``.
        embeddings_b: ``[N, D]``, row ``i`` paired with row ``i`` of ``embeddings_a``.
        present_a: Optional ``[N]`` bool.
        present_b: Optional ``[N]`` bool.
        alpha: Exponent (2 in Wang & Isola).

    Returns:
        The alignment; NaN if no row has both modalities.

    Example:
        >>> x = torch.randn(5, 3)
        >>> alignment(x, x)
        0.0
        >>> alignment(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]))  # ||e1 - e2||^2
        2.0000000000000004
    """
    rows = _both(present_a, present_b, embeddings_a.shape[0])
    if not rows.any():
        return float("nan")
    a = F.normalize(embeddings_a[rows].double(), dim=1)
    b = F.normalize(embeddings_b[rows].double(), dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(
    embeddings: Tensor, present: Tensor | None = None, t: float = 2.0, block: int = 512
) -> float:
    """Uniformity ``log E_{i != j} exp(-t ||f(x_i) - f(x_j)||^2)`` (lower is more uniform).

    The ``N (N - 1) / 2`` pairs are visited ``block`` rows at a time (squared distances of unit
    vectors as ``2 - 2 cos``, in float64) and their log-sum-exps combined, so memory grows as
    ``block x N``, not ``N^2`` (10,000 test samples: 40 MB instead of 1.2 GB).

    Args:
        embeddings: ``[N, D]`` (L2-normalised inside).
        present: Optional ``[N]`` bool: rows used.
        t: Temperature (2 in Wang & Isola).
        block: Rows per block.

    Returns:
        The uniformity; NaN with fewer than two rows.

    Example:
        >>> round(uniformity(torch.tensor([[1.0, 0.0], [-1.0, 0.0]])), 6)  # log exp(-2 * 4)
        -8.0
    """
    rows = _both(present, None, embeddings.shape[0])
    if int(rows.sum()) < 2:
        return float("nan")
    z = F.normalize(embeddings[rows].double(), dim=1)
    n = z.shape[0]
    columns = torch.arange(n)
    parts = []
    for start in range(0, n - 1, block):
        stop = min(start + block, n - 1)
        sq = (2.0 - 2.0 * z[start:stop] @ z.T).clamp_min(0.0)
        later = columns[None, :] > torch.arange(start, stop)[:, None]  # the pairs i < j
        parts.append(torch.logsumexp((-t * sq)[later], dim=0))
    pairs = n * (n - 1) / 2
    return float(torch.logsumexp(torch.stack(parts), dim=0) - math.log(pairs))


def modality_gap(
    embeddings_a: Tensor,
    embeddings_b: Tensor,
    present_a: Tensor | None = None,
    present_b: Tensor | None = None,
) -> float:
    """Euclidean distance between the centroids of two modalities on the unit sphere.

    Each modality's centroid is the mean of its L2-normalised embeddings over the rows where it
    is present (the gap is a property of each modality's cloud, not of pairs).

    Args:
        embeddings_a: ``[N, D]``.
        embeddings_b: ``[M, D]``.
        present_a: Optional ``[N]`` bool.
        present_b: Optional ``[M]`` bool.

    Returns:
        ``||mean(a) - mean(b)||_2``.

    Example:
        >>> modality_gap(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 3.0]]))
        1.4142135623730951
    """
    a_rows = _both(present_a, None, embeddings_a.shape[0])
    b_rows = _both(present_b, None, embeddings_b.shape[0])
    if not a_rows.any() or not b_rows.any():
        return float("nan")
    a = F.normalize(embeddings_a[a_rows].double(), dim=1).mean(0)
    b = F.normalize(embeddings_b[b_rows].double(), dim=1).mean(0)
    return float((a - b).norm())


def effective_rank(embeddings: Tensor, present: Tensor | None = None, center: bool = True) -> float:
    """Effective rank ``exp(H(p))`` with ``p_k = s_k / sum(s)`` the normalised singular values.

    Args:
        embeddings: ``[N, D]``.
        present: Optional ``[N]`` bool: rows used.
        center: Subtract the mean row first (the rank of the covariance's square root).

    Returns:
        A number in ``[1, min(N, D)]``; NaN with no row.

    Example:
        >>> round(effective_rank(torch.diag(torch.tensor([1.0, 1.0, 1.0, 0.0])), center=False), 6)
        3.0
    """
    rows = _both(present, None, embeddings.shape[0])
    if not rows.any():
        return float("nan")
    x = embeddings[rows].double()
    if center:
        x = x - x.mean(0, keepdim=True)
    s = torch.linalg.svdvals(x)
    if float(s.sum()) == 0:
        return float("nan")
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def representation_diagnostics(
    representations: Mapping[str, Tensor],
    joint: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
) -> list[MetricRecord]:
    """Every diagnostic of one split as metric records.

    Effective rank and uniformity of each modality's representation; alignment and modality
    gap of each pair of modalities in the joint space (pairs whose dimensions differ are
    skipped: they share no space).

    Args:
        representations: Modality → ``[N, D]`` encoder outputs.
        joint: Modality → ``[N, E]`` joint-space embeddings.
        present: Modality → ``[N]`` bool.

    Returns:
        Records named ``effective_rank``, ``uniformity`` (per modality), ``alignment`` and
        ``modality_gap`` (per pair ``a|b``).
    """
    records = []
    for m, x in representations.items():
        records.append(MetricRecord("effective_rank", effective_rank(x, present[m]), m))
        records.append(MetricRecord("uniformity", uniformity(x, present[m]), m))
    for a, b in itertools.combinations(list(joint), 2):
        if joint[a].shape[1] != joint[b].shape[1]:
            continue
        pa, pb = present[a], present[b]
        records.append(MetricRecord("alignment", alignment(joint[a], joint[b], pa, pb), f"{a}|{b}"))
        records.append(
            MetricRecord("modality_gap", modality_gap(joint[a], joint[b], pa, pb), f"{a}|{b}")
        )
    return records
