"""Cross-modal retrieval Recall@K that is honest about ties.

Query ``i``'s correct match is gallery item ``i``. When several gallery items have exactly
the same similarity to a query as its correct match — which happens whenever targets repeat
(the ``shapes`` captions are exact duplicates for half the test set, AV-MNIST reuses each
recording about 2.3 times) — "the rank of the correct item" is not defined. Counting only the
strictly higher similarities (the *optimistic* rank) credits a query with a hit although a
duplicate would be returned just as well; it inflates Recall@K and makes the two directions
of a pair look asymmetric.

:func:`retrieval_recall` therefore reports the **expected** Recall@K under random
tie-breaking (the usual fix, e.g. McSherry & Najork, ECIR 2008, "Computing information
retrieval performance measures efficiently in the presence of tied scores"). For a query
whose correct item has similarity ``s``, let ``g`` be the number of gallery items with a
similarity strictly above ``s`` and ``t`` the number of *other* items with similarity exactly
``s``. Under a uniformly random order of the ``t + 1`` tied items the correct item's 0-based
rank is ``g + U`` with ``U`` uniform on ``{0, ..., t}``, so

    P(rank < K) = clip((K - g) / (t + 1), 0, 1).

:func:`retrieval_recall_multi_positive` answers a different question: any gallery item whose
embedding is identical to the correct item's (the same content — the same caption, the same
recording) counts as a hit. With ``c`` such items (the correct one included; all tied at
``s``) among the ``n = t + 1`` tied items and ``m = clip(K - g, 0, n)`` of the tied places
inside the top ``K``, at least one of them is there with probability

    P(hit@K) = 1 - C(n - c, m) / C(n, m).

Gallery rows are compared on their unique values, so identical gallery embeddings give
bit-identical similarities whatever their position in the matrix product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

TieRule = Literal["random", "optimistic", "pessimistic"]


@dataclass(frozen=True)
class _TieCounts:
    """Per-query counts around the correct item's similarity.

    Attributes:
        greater: ``[N]`` gallery items with a strictly higher similarity.
        tied: ``[N]`` other gallery items with exactly the same similarity.
        same: ``[N]`` gallery items identical to the correct one (itself included).
    """

    greater: Tensor
    tied: Tensor
    same: Tensor


def _tie_counts(queries: Tensor, gallery: Tensor, chunk_size: int) -> _TieCounts:
    if queries.ndim != 2 or gallery.ndim != 2:
        raise ValueError("queries and gallery must be [N, D] matrices.")
    if queries.shape[0] != gallery.shape[0]:
        raise ValueError("queries and gallery must be aligned (same number of rows).")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    g = F.normalize(gallery.float(), dim=1)
    unique, inverse, counts = torch.unique(g, dim=0, return_inverse=True, return_counts=True)
    greater, tied, same = [], [], []
    for start in range(0, queries.shape[0], chunk_size):
        q = F.normalize(queries[start : start + chunk_size].float(), dim=1)
        sims = q @ unique.t()  # [chunk, U]
        rows = torch.arange(q.shape[0])
        target = inverse[start : start + q.shape[0]]
        correct = sims[rows, target].unsqueeze(1)
        weights = counts.unsqueeze(0)
        greater.append(((sims > correct) * weights).sum(dim=1))
        tied.append(((sims == correct) * weights).sum(dim=1) - 1)
        same.append(counts[target])
    return _TieCounts(torch.cat(greater), torch.cat(tied), torch.cat(same))


def retrieval_recall(
    queries: Tensor,
    gallery: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 1024,
    ties: TieRule = "random",
) -> dict[int, float]:
    """Recall@K of paired retrieval, expected under random tie-breaking.

    Query ``i``'s correct match is gallery item ``i``; similarity is cosine. See the module
    docstring for the closed form. Memory stays ``O(chunk_size × N)``.

    Args:
        queries: ``[N, D]``.
        gallery: ``[N, D]``, aligned with ``queries``.
        ks: Cut-offs.
        chunk_size: Queries per chunk.
        ties: ``"random"`` (expected value under random tie-breaking, the reported metric),
            ``"optimistic"`` (ties ranked below the correct item — the old, inflated figure) or
            ``"pessimistic"`` (ties ranked above it). For comparison only.

    Returns:
        ``{k: recall}``.

    Example:
        >>> q = torch.eye(4)
        >>> retrieval_recall(q, q, ks=(1,))
        {1: 1.0}
        >>> gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # two identical targets
        >>> retrieval_recall(gallery, gallery, ks=(1, 2))
        {1: 0.5, 2: 1.0}
    """
    counts = _tie_counts(queries, gallery, chunk_size)
    greater, tied = counts.greater.double(), counts.tied.double()
    result = {}
    for k in ks:
        if ties == "random":
            hit = ((k - greater) / (tied + 1)).clamp(0.0, 1.0)
        elif ties == "optimistic":
            hit = (greater < k).double()
        elif ties == "pessimistic":
            hit = (greater + tied < k).double()
        else:
            raise ValueError(f"ties must be random, optimistic or pessimistic, got {ties!r}.")
        result[int(k)] = float(hit.mean())
    return result


def _none_in_first(n: Tensor, c: Tensor, m: Tensor) -> Tensor:
    """P(none of ``c`` marked items among the first ``m`` of ``n`` randomly ordered ones).

    ``C(n - c, m) / C(n, m)``, through log-gamma so that large tie groups cost nothing.
    """
    possible = n - c >= m
    safe_m = torch.where(possible, m, torch.zeros_like(m))
    log_ratio = (
        torch.lgamma(n - c + 1)
        - torch.lgamma(n - c - safe_m + 1)
        - torch.lgamma(n + 1)
        + torch.lgamma(n - safe_m + 1)
    )
    return torch.where(possible, log_ratio.exp(), torch.zeros_like(log_ratio))


def retrieval_recall_multi_positive(
    queries: Tensor,
    gallery: Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 1024,
) -> dict[int, float]:
    """Multi-positive Recall@K: any gallery item identical to the correct one is a hit.

    Use it where targets repeat (a caption shared by several images, a recording reused for
    several digits): retrieving an identical copy of the target is then as good as retrieving
    the target itself. Expected under random tie-breaking; closed form in the module
    docstring. Equals :func:`retrieval_recall` when no gallery rows repeat.

    Args:
        queries: ``[N, D]``.
        gallery: ``[N, D]``, aligned with ``queries``.
        ks: Cut-offs.
        chunk_size: Queries per chunk.

    Returns:
        ``{k: recall}``.

    Example:
        >>> gallery = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> retrieval_recall_multi_positive(gallery, gallery, ks=(1,))
        {1: 1.0}
    """
    counts = _tie_counts(queries, gallery, chunk_size)
    greater, same = counts.greater.double(), counts.same.double()
    n = counts.tied.double() + 1
    result = {}
    for k in ks:
        m = torch.minimum((k - greater).clamp(min=0.0), n)
        result[int(k)] = float((1.0 - _none_in_first(n, same, m)).mean())
    return result


def has_repeated_rows(x: Tensor) -> bool:
    """Whether any two rows of ``x`` (after L2 normalisation) are identical.

    Args:
        x: ``[N, D]``.

    Returns:
        True when a row repeats.
    """
    return int(torch.unique(F.normalize(x.float(), dim=1), dim=0).shape[0]) < x.shape[0]
