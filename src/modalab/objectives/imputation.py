"""Imputation loss: predict a missing modality's embedding from the present ones.

The loss is computed only on rows where the target modality is *observed* (its true embedding
exists) and at least one source modality is present; rows with the target absent carry no
gradient. The target is detached (stop-gradient), so the encoders are not pulled towards the
imputer's guesses — the role of the stop-gradient in feature prediction (Grill et al., "Bootstrap
Your Own Latent", NeurIPS 2020). Predicting a missing modality's representation from the others
follows Ma et al., "SMIL: Multimodal Learning with Severely Missing Modality", AAAI 2021.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.objectives.output import LossOutput, zero_like_graph

__all__ = ["imputation_loss"]


def imputation_loss(
    predicted: Mapping[str, Tensor],
    target: Mapping[str, Tensor],
    target_present: Mapping[str, Tensor],
    source_present: Mapping[str, Tensor] | None = None,
) -> LossOutput:
    """Mean squared error of imputed embeddings, on rows where the target is observed.

    Args:
        predicted: Modality → ``[B, D]`` embedding predicted from the *other* modalities.
        target: Modality → ``[B, D]`` true embedding (detached inside).
        target_present: Modality → ``[B]`` bool: the target modality is truly observed.
        source_present: Modality → ``[B]`` bool: at least one source modality was present for
            that prediction (default: all rows).

    Returns:
        The loss; a graph-keeping zero when no row is trainable.

    Example:
        >>> pred = {"a": torch.tensor([[1.0], [5.0]])}
        >>> true = {"a": torch.tensor([[0.0], [0.0]])}
        >>> imputation_loss(pred, true, {"a": torch.tensor([True, False])}).loss.item()
        1.0
    """
    terms: dict[str, Tensor] = {}
    counts: dict[str, int] = {}
    for name, guess in predicted.items():
        if name not in target or name not in target_present:
            raise ValueError(
                f"imputation_loss: no target embedding/presence mask for modality {name!r}."
            )
        rows = target_present[name]
        if source_present is not None:
            rows = rows & source_present[name]
        count = int(rows.sum())
        if count == 0:
            continue
        terms[name] = F.mse_loss(guess[rows], target[name][rows].detach())
        counts[name] = count
    if terms:
        loss = torch.stack(list(terms.values())).mean()
    else:
        loss = zero_like_graph(*predicted.values())
    return LossOutput(loss, terms, counts)
