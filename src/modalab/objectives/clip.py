"""CLIP's symmetric InfoNCE over every pair of modalities, respecting ``present``.

Radford et al., "Learning Transferable Visual Models From Natural Language Supervision",
ICML 2021. For two modalities ``a`` and ``b`` with L2-normalised embeddings, the loss is the
mean of the cross-entropies of the ``a → b`` and ``b → a`` similarity rows, where the positive
of row ``i`` is column ``i``. With more than two modalities every pair contributes one term
(as in ImageBind/"all pairs" contrastive learning), and the total is the mean over pairs.

A sample whose modality is absent is neither a positive nor a negative for any pair involving
that modality: the pair's logits are computed over the rows where both modalities are present.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.distributed import gather_mapping
from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = ["CLIPLoss", "clip_loss", "info_nce_pair"]


def info_nce_pair(
    embeddings_a: Tensor, embeddings_b: Tensor, logit_scale: Tensor | float
) -> Tensor:
    """Symmetric InfoNCE between two aligned, L2-normalised embedding sets.

    Args:
        embeddings_a: ``[N, D]``; row ``i`` is paired with row ``i`` of ``embeddings_b``.
        embeddings_b: ``[N, D]``.
        logit_scale: Multiplier of the cosine similarities (``1 / temperature``).

    Returns:
        Scalar ``(CE(S, I) + CE(S^T, I)) / 2`` with ``S = logit_scale * A B^T``.

    Example:
        >>> z = torch.eye(3)
        >>> round(info_nce_pair(z, z, 1.0).item(), 4)  # -log(e / (e + 2))
        0.5514
    """
    logits = logit_scale * embeddings_a @ embeddings_b.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def clip_loss(
    embeddings: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    logit_scale: Tensor | float,
    pairs: Sequence[tuple[str, str]] | None = None,
    normalize: bool = True,
) -> LossOutput:
    """CLIP loss over all modality pairs, counting only rows where both are present.

    Args:
        embeddings: Modality → ``[B, D]`` embeddings (same ``D`` for all).
        present: Modality → ``[B]`` bool presence mask.
        logit_scale: ``1 / temperature``.
        pairs: Which pairs to contrast; default all unordered pairs in insertion order.
        normalize: L2-normalise the embeddings first.

    Returns:
        The mean over pairs with at least two jointly present rows; a pair with fewer has no
        term. If no pair has a term the loss is a zero that keeps the graph.

    Example:
        >>> z = {"a": torch.eye(3), "b": torch.eye(3)}
        >>> p = {"a": torch.tensor([True, True, False]), "b": torch.ones(3, dtype=torch.bool)}
        >>> out = clip_loss(z, p, 1.0)
        >>> out.num_rows, round(out.loss.item(), 4)  # -log(e / (e + 1)) over 2 rows
        ({'a~b': 2}, 0.3133)
    """
    names = list(embeddings)
    if len(names) < 2:
        raise ValueError(f"clip_loss needs at least two modalities, got {names}.")
    if pairs is None:
        pairs = list(itertools.combinations(names, 2))
    terms: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for a, b in pairs:
        rows = present[a] & present[b]
        count = int(rows.sum())
        if count < 2:
            continue
        key = f"{a}~{b}"
        # Select the present rows before normalising, so that an absent row (which may hold
        # anything, NaN included) never enters the graph and gets an exactly zero gradient.
        za, zb = embeddings[a][rows], embeddings[b][rows]
        if normalize:
            za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
        terms[key] = info_nce_pair(za, zb, logit_scale)
        counts[key] = count
    if terms:
        loss = torch.stack(list(terms.values())).mean()
    else:
        # A zero that keeps the graph without touching any value (NaN * 0 would be NaN).
        loss = zero_like_graph(*embeddings.values())
    return LossOutput(loss, terms, counts)


@OBJECTIVES.register("clip")
class CLIPLoss(nn.Module):
    """CLIP symmetric InfoNCE over all modality pairs with a learnable temperature.

    Args:
        temperature: Initial temperature (CLIP: 0.07).
        learn_temperature: Whether ``log(1 / temperature)`` is a learned parameter.
        max_logit_scale: Clamp of ``1 / temperature`` (CLIP: 100).
        gather_distributed: Under DDP, gather embeddings and masks from every process (with
            gradients) so that the negatives are the global batch.

    Example:
        >>> loss = CLIPLoss(temperature=1.0, learn_temperature=False)
        >>> z = {"a": torch.eye(3), "b": torch.eye(3)}
        >>> p = {k: torch.ones(3, dtype=torch.bool) for k in z}
        >>> round(loss(z, p).loss.item(), 4)
        0.5514
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learn_temperature: bool = True,
        max_logit_scale: float = 100.0,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        init = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("log_logit_scale", init)
        self.max_log_scale = math.log(max_logit_scale)
        self.gather_distributed = gather_distributed

    @property
    def logit_scale(self) -> Tensor:
        """Current ``1 / temperature``, clamped."""
        return self.log_logit_scale.clamp(max=self.max_log_scale).exp()

    @full_precision
    def forward(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> LossOutput:
        """Loss of ``{m: [B, D]}`` embeddings with ``{m: [B]}`` presence masks."""
        if self.gather_distributed:
            embeddings = gather_mapping(embeddings)
            present = gather_mapping(present)
        return clip_loss(embeddings, present, self.logit_scale)
