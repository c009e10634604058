"""Masked modelling, masked-modality prediction, image–text matching and captioning losses.

* Masked token prediction — Devlin, Chang, Lee & Toutanova, "BERT: Pre-training of Deep
  Bidirectional Transformers for Language Understanding", NAACL 2019.
* Masked patch/feature prediction — He et al., "Masked Autoencoders Are Scalable Vision
  Learners", CVPR 2022 (the loss is computed on masked patches only).
* Masked-modality modelling (predict one modality's embedding from the others) and matching
  (is this pair real or swapped?) — Lu, Batra, Parikh & Lee, "ViLBERT", NeurIPS 2019; Tan &
  Bansal, "LXMERT", EMNLP 2019.
* Captioning — Yu et al., "CoCa: Contrastive Captioners are Image-Text Foundation Models",
  TMLR 2022: autoregressive next-token cross-entropy next to the contrastive loss.

Every loss takes explicit masks saying which positions/rows count; rows of absent modalities
are excluded by the caller's masks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = [
    "MaskedModalityLoss",
    "captioning_loss",
    "masked_feature_loss",
    "masked_modality_loss",
    "masked_token_loss",
    "matching_loss",
]


def masked_token_loss(logits: Tensor, targets: Tensor, masked: Tensor) -> Tensor:
    """Cross-entropy of the original tokens at the masked positions (BERT's MLM).

    Args:
        logits: ``[B, L, V]`` vocabulary logits.
        targets: ``[B, L]`` original token ids.
        masked: ``[B, L]`` bool: positions that were masked (and belong to present rows).

    Returns:
        Mean over masked positions; a graph-keeping zero if none is masked.

    Example:
        >>> logits = torch.zeros(1, 2, 4)
        >>> round(masked_token_loss(logits, torch.tensor([[1, 2]]),
        ...       torch.tensor([[True, False]])).item(), 4)  # log 4
        1.3863
    """
    if logits.shape[:2] != targets.shape or targets.shape != masked.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)}, targets {tuple(targets.shape)} and masked "
            f"{tuple(masked.shape)} must agree as [B, L, V], [B, L], [B, L]."
        )
    if not bool(masked.any()):
        return zero_like_graph(logits)
    return F.cross_entropy(logits[masked], targets[masked])


def masked_feature_loss(prediction: Tensor, target: Tensor, masked: Tensor) -> Tensor:
    """Mean squared error over masked patches only (MAE; He et al., CVPR 2022).

    Args:
        prediction: ``[B, P, F]`` predicted patch features.
        target: ``[B, P, F]`` original patch features.
        masked: ``[B, P]`` bool: patches that were hidden from the encoder.

    Returns:
        ``mean_{masked (b, p)} mean_f (pred - target)²``; zero (keeping the graph) if none.

    Example:
        >>> pred, tgt = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 3.0], [9.0, 9.0]]])
        >>> masked_feature_loss(pred, tgt, torch.tensor([[True, False]])).item()
        5.0
    """
    if prediction.shape != target.shape or prediction.shape[:2] != masked.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)}, target {tuple(target.shape)} and masked "
            f"{tuple(masked.shape)} must agree as [B, P, F], [B, P, F], [B, P]."
        )
    if not bool(masked.any()):
        return zero_like_graph(prediction)
    return (prediction[masked] - target[masked].detach()).pow(2).mean()


def masked_modality_loss(
    predictions: Mapping[str, Tensor], targets: Mapping[str, Tensor], valid: Mapping[str, Tensor]
) -> LossOutput:
    """Predict each modality's embedding from the others: ``2 - 2 cos(p_m, sg(z_m))``.

    Args:
        predictions: Modality → ``[B, D]`` embedding predicted from the *other* modalities.
        targets: Modality → ``[B, D]`` the modality's own embedding (gradient stopped).
        valid: Modality → ``[B]`` bool: the modality is present *and* at least one other
            modality is present (something to predict from).

    Returns:
        Mean over modalities with a valid row; term per modality.

    Example:
        >>> p = {"a": torch.tensor([[1.0, 0.0]]), "b": torch.tensor([[1.0, 0.0]])}
        >>> t = {"a": torch.tensor([[0.0, 1.0]]), "b": torch.tensor([[5.0, 0.0]])}
        >>> v = {"a": torch.tensor([True]), "b": torch.tensor([False])}
        >>> masked_modality_loss(p, t, v).loss.item()  # only a counts
        2.0
    """
    terms: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for name, prediction in predictions.items():
        rows = valid[name]
        count = int(rows.sum())
        if count == 0:
            continue
        cos = F.cosine_similarity(prediction[rows], targets[name][rows].detach(), dim=-1)
        terms[name] = (2 - 2 * cos).mean()
        counts[name] = count
    if not terms:
        return LossOutput(zero_like_graph(*predictions.values()))
    return LossOutput(torch.stack(list(terms.values())).mean(), terms, counts)


@OBJECTIVES.register("masked_modality")
class MaskedModalityLoss(nn.Module):
    """Masked-modality modelling: regress each modality's embedding from the others.

    See :func:`masked_modality_loss`.

    Example:
        >>> p = {"a": torch.ones(2, 3)}
        >>> out = MaskedModalityLoss()(p, p, {"a": torch.ones(2, dtype=torch.bool)})
        >>> abs(round(out.loss.item(), 4))
        0.0
    """

    #: Compares predictions with targets: ``forward(predictions, targets, valid)``.
    takes_targets: ClassVar[bool] = True

    @full_precision
    def forward(
        self,
        predictions: Mapping[str, Tensor],
        targets: Mapping[str, Tensor],
        valid: Mapping[str, Tensor],
    ) -> LossOutput:
        """See :func:`masked_modality_loss`."""
        return masked_modality_loss(predictions, targets, valid)


def matching_loss(logits: Tensor, is_match: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy of "is this pair real or swapped?" (ViLBERT/LXMERT matching).

    Args:
        logits: ``[B]`` matching logits.
        is_match: ``[B]`` bool: the pair is real.
        valid: ``[B]`` bool: rows where both modalities of the pair are present.

    Returns:
        Mean over valid rows; a graph-keeping zero if none.

    Example:
        >>> round(matching_loss(torch.zeros(2), torch.tensor([True, False]),
        ...       torch.tensor([True, True])).item(), 4)  # log 2
        0.6931
    """
    if not bool(valid.any()):
        return zero_like_graph(logits)
    return F.binary_cross_entropy_with_logits(logits[valid], is_match[valid].to(logits.dtype))


def captioning_loss(logits: Tensor, tokens: Tensor, pad_id: int, rows: Tensor) -> Tensor:
    """Next-token cross-entropy of a caption decoder (CoCa; Yu et al., TMLR 2022).

    Args:
        logits: ``[B, L, V]``; position ``t`` predicts token ``t + 1``.
        tokens: ``[B, L]`` caption token ids.
        pad_id: Padding id (ignored as a target).
        rows: ``[B]`` bool: rows with a caption and something to condition on.

    Returns:
        Mean over non-pad target tokens of the valid rows (positions ``1..L-1``).

    Example:
        >>> logits = torch.zeros(1, 3, 5)
        >>> round(captioning_loss(logits, torch.tensor([[1, 4, 0]]), 0,
        ...       torch.tensor([True])).item(), 4)  # one target (4): log 5
        1.6094
    """
    if logits.shape[:2] != tokens.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and tokens {tuple(tokens.shape)} must agree as "
            "[B, L, V] and [B, L]."
        )
    targets = tokens[:, 1:]
    keep = (targets != pad_id) & rows.unsqueeze(1)
    if not bool(keep.any()):
        return zero_like_graph(logits)
    return F.cross_entropy(logits[:, :-1][keep], targets[keep])
