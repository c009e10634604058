"""Contrastive objectives beyond CLIP: SimCLR's NT-Xent and MoCo's InfoNCE with a queue.

* NT-Xent — Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning
  of Visual Representations", ICML 2020. For ``N`` pairs of views ``(a_i, b_i)`` the ``2N``
  L2-normalised embeddings are scored against each other; the positive of ``a_i`` is ``b_i``
  and its negatives are the other ``2N - 2`` embeddings (both views of every other sample).
  Across modalities the two "views" are two modalities of the same sample.
* MoCo — He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual
  Representation Learning", CVPR 2020; Chen, Fan, Girshick & He, "Improved Baselines with
  Momentum Contrastive Learning" (MoCo v2), arXiv 2020; Chen, Xie & He, "An Empirical Study of
  Training Self-Supervised Vision Transformers" (MoCo v3), ICCV 2021. A query ``q_i`` is
  scored against its key ``k_i`` (from a momentum encoder) and against negatives: a queue of
  past keys (v2) or the other keys of the (global) batch (v3).

Rows whose modality is absent are dropped before scoring: they are neither positives nor
negatives. Under DDP the modules gather embeddings and masks from every process with gradients
(:func:`~modalab.objectives.distributed.gather_with_grad`), so negatives are the global batch.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.distributed import gather_mapping, gather_with_grad
from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = ["MoCoLoss", "NTXentLoss", "moco_infonce", "nt_xent", "nt_xent_loss"]


def nt_xent(view_a: Tensor, view_b: Tensor, temperature: float) -> Tensor:
    """NT-Xent of ``N`` aligned pairs of L2-normalised embeddings.

    Args:
        view_a: ``[N, D]``; row ``i`` is a view of the same sample as row ``i`` of ``view_b``.
        view_b: ``[N, D]``.
        temperature: Softmax temperature ``τ``.

    Returns:
        Scalar mean over the ``2N`` anchors of
        ``-log exp(s_ii'/τ) / Σ_{k ≠ i} exp(s_ik/τ)``.

    Example:
        >>> z = torch.eye(2)
        >>> # anchor e1: positive e1 (sim 1), negatives e2 (0) and e2 (0)
        >>> round(nt_xent(z, z, 1.0).item(), 4)  # -log(e / (e + 2))
        0.5514
    """
    n = view_a.shape[0]
    z = torch.cat([view_a, view_b], dim=0)
    logits = z @ z.t() / temperature
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, target)


def nt_xent_loss(
    embeddings: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    temperature: float,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> LossOutput:
    """NT-Xent over pairs of branches (two augmented views, or two modalities).

    Args:
        embeddings: Branch name → ``[B, D]`` embeddings (normalised inside).
        present: Branch name → ``[B]`` bool presence mask.
        temperature: Softmax temperature.
        pairs: Pairs of branches to contrast; default every unordered pair.

    Returns:
        The mean over pairs with at least two jointly present rows.

    Example:
        >>> z = {"v1": torch.eye(3), "v2": torch.eye(3)}
        >>> p = {"v1": torch.tensor([True, True, False]), "v2": torch.ones(3, dtype=torch.bool)}
        >>> out = nt_xent_loss(z, p, 1.0)
        >>> out.num_rows, round(out.loss.item(), 4)  # only 2 rows: -log(e / (e + 2))
        ({'v1~v2': 2}, 0.5514)
    """
    if temperature <= 0:
        raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError(f"nt_xent_loss needs at least two branches, got {names}.")
    pairs = list(itertools.combinations(names, 2)) if pairs is None else list(pairs)
    terms: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for a, b in pairs:
        rows = present[a] & present[b]
        count = int(rows.sum())
        if count < 2:
            continue
        key = f"{a}~{b}"
        za = F.normalize(embeddings[a][rows], dim=-1)
        zb = F.normalize(embeddings[b][rows], dim=-1)
        terms[key] = nt_xent(za, zb, temperature)
        counts[key] = count
    if not terms:
        return LossOutput(zero_like_graph(*embeddings.values()))
    return LossOutput(torch.stack(list(terms.values())).mean(), terms, counts)


@OBJECTIVES.register("nt_xent")
class NTXentLoss(nn.Module):
    """SimCLR's NT-Xent within a modality (two views) or across modalities (Chen et al., 2020).

    Args:
        temperature: Softmax temperature (SimCLR: 0.1-0.5).
        gather_distributed: Under DDP, gather embeddings and masks from every process with
            gradients so that the negatives are the global batch.

    Example:
        >>> loss = NTXentLoss(temperature=1.0)
        >>> z = {"v1": torch.eye(2), "v2": torch.eye(2)}
        >>> p = {k: torch.ones(2, dtype=torch.bool) for k in z}
        >>> round(loss(z, p).loss.item(), 4)
        0.5514
    """

    def __init__(self, temperature: float, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(
        self,
        embeddings: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> LossOutput:
        """Loss of ``{branch: [B, D]}`` with ``{branch: [B]}`` masks."""
        if self.gather_distributed:
            embeddings = gather_mapping(embeddings)
            present = gather_mapping(present)
        return nt_xent_loss(embeddings, present, self.temperature, pairs)


def moco_infonce(query: Tensor, key: Tensor, queue: Tensor | None, temperature: float) -> Tensor:
    """MoCo's InfoNCE of queries against their keys and negatives.

    Args:
        query: ``[N, D]`` L2-normalised queries (online encoder, with predictor in v3).
        key: ``[N, D]`` L2-normalised keys (momentum encoder; no gradient flows into them).
        queue: ``[K, D]`` L2-normalised negative keys (MoCo v2), or ``None`` to use the other
            keys of the batch as negatives (MoCo v3).
        temperature: Softmax temperature ``τ``.

    Returns:
        Scalar cross-entropy. With a queue, the logits of row ``i`` are
        ``[q_i·k_i, q_i·Q_1, ..., q_i·Q_K] / τ`` and the target is 0; without, they are
        ``q_i·k_j / τ`` and the target is ``i``.

    Example:
        >>> q = torch.eye(2)
        >>> round(moco_infonce(q, q, -torch.eye(2), 1.0).item(), 4)  # -log(e/(e+e^-1+1))
        0.4076
    """
    key = key.detach()
    if queue is None:
        logits = query @ key.t() / temperature
        target = torch.arange(query.shape[0], device=query.device)
    else:
        positive = (query * key).sum(dim=1, keepdim=True)
        logits = torch.cat([positive, query @ queue.detach().t()], dim=1) / temperature
        target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


@OBJECTIVES.register("moco")
class MoCoLoss(nn.Module):
    """MoCo v2 (queue of negatives) / v3 (in-batch negatives), one queue per key branch.

    He et al., CVPR 2020; Chen et al., arXiv 2020 (v2); Chen, Xie & He, ICCV 2021 (v3). For a
    pair ``(a, b)`` the queries of ``a`` are scored against the keys of ``b`` and the
    negatives of ``b``'s queue; across modalities each modality keeps its own queue. The loss
    is symmetric: ``(a, b)`` and ``(b, a)`` both contribute.

    Args:
        names: Branches (modalities) that have a queue.
        dim: Embedding dimension.
        queue_size: Keys per queue; ``0`` for MoCo v3's in-batch negatives.
        temperature: Softmax temperature (MoCo v2: 0.2; v3: 0.2).
        gather_distributed: Gather queries (with gradients), keys and masks across processes,
            so that the loss is that of the global batch on every process (v3: the global
            batch's keys are the negatives; v2: every row counts once in the mean, whatever
            the number of present rows per process), and every process enqueues the same
            global keys, so the queues stay identical.
        seed: Seed of the random initial queue.

    Example:
        >>> loss = MoCoLoss(["a", "b"], dim=2, queue_size=0, temperature=1.0)
        >>> z = {"a": torch.eye(2), "b": torch.eye(2)}
        >>> p = {k: torch.ones(2, dtype=torch.bool) for k in z}
        >>> round(loss(z, z, p).loss.item(), 4)  # -log(e / (e + 1))
        0.3133
    """

    #: Compares queries with momentum keys: ``forward(queries, keys, present)``.
    takes_targets: ClassVar[bool] = True
    #: Keeps a queue of keys: the recipe calls :meth:`enqueue` after each training loss.
    keeps_queue: ClassVar[bool] = True

    def __init__(
        self,
        names: Sequence[str],
        dim: int,
        queue_size: int = 4096,
        temperature: float = 0.2,
        gather_distributed: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0 (0: MoCo v3), got {queue_size}.")
        self.names = list(names)
        self.temperature = temperature
        self.queue_size = queue_size
        self.gather_distributed = gather_distributed
        generator = torch.Generator().manual_seed(seed)
        for name in self.names:
            init = F.normalize(torch.randn(max(queue_size, 1), dim, generator=generator), dim=1)
            self.register_buffer(f"queue_{name}", init)
            self.register_buffer(f"pointer_{name}", torch.zeros((), dtype=torch.long))

    def queue(self, name: str) -> Tensor | None:
        """A copy of the ``[K, D]`` negatives of branch ``name`` (``None`` in v3).

        A copy, so that enqueueing before the backward pass does not alter saved tensors.
        """
        if self.queue_size == 0:
            return None
        return getattr(self, f"queue_{name}").clone()  # type: ignore[no-any-return]

    @full_precision
    def forward(
        self,
        queries: Mapping[str, Tensor],
        keys: Mapping[str, Tensor],
        present: Mapping[str, Tensor],
        pairs: Sequence[tuple[str, str]] | None = None,
    ) -> LossOutput:
        """Symmetric MoCo loss of ``{branch: [B, D]}`` queries and keys."""
        if self.gather_distributed:
            queries = gather_mapping(queries)
            keys = {k: gather_with_grad(v.detach()) for k, v in keys.items()}
            present = gather_mapping(present)
        names = list(queries)
        pairs = list(itertools.combinations(names, 2)) if pairs is None else list(pairs)
        terms: dict[str, Tensor] = {}
        counts: dict[str, int] = {}
        for a, b in pairs:
            rows = present[a] & present[b]
            count = int(rows.sum())
            if count < (2 if self.queue_size == 0 else 1):
                continue
            parts = []
            for q, k in ((a, b), (b, a)):
                parts.append(
                    moco_infonce(
                        F.normalize(queries[q][rows], dim=1),
                        F.normalize(keys[k][rows], dim=1),
                        self.queue(self._queue_name(k)),
                        self.temperature,
                    )
                )
            terms[f"{a}~{b}"] = 0.5 * (parts[0] + parts[1])
            counts[f"{a}~{b}"] = count
        if not terms:
            return LossOutput(zero_like_graph(*queries.values()))
        return LossOutput(torch.stack(list(terms.values())).mean(), terms, counts)

    def _queue_name(self, branch: str) -> str:
        if branch in self.names:
            return branch
        if len(self.names) == 1:
            return self.names[0]
        raise ValueError(f"Branch {branch!r} has no queue; queues: {self.names}.")

    @torch.no_grad()
    def enqueue(self, keys: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> None:
        """Push the present rows of each branch's keys (from every process) into its queue.

        Branches that share a queue (two views of one modality) push in turn.
        """
        if self.queue_size == 0:
            return
        for branch, key in keys.items():
            rows = present[branch]
            if self.gather_distributed:
                key, rows = gather_with_grad(key.detach()), gather_with_grad(rows)
            new = F.normalize(key[rows].detach(), dim=1)[: self.queue_size]
            name = self._queue_name(branch)
            queue: Tensor = getattr(self, f"queue_{name}")
            pointer: Tensor = getattr(self, f"pointer_{name}")
            start = int(pointer)
            positions = (torch.arange(new.shape[0], device=queue.device) + start) % self.queue_size
            queue[positions] = new.to(queue.dtype)
            pointer.fill_((start + new.shape[0]) % self.queue_size)
