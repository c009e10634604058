"""Parts that let a fused model cope with absent modalities: learned absent embeddings, imputers.

* :class:`AbsentEmbeddings` — one learned vector per modality that stands in for an absent
  modality's embedding (a learned "missing" token, as the modality tokens of Ma et al., "Are
  Multimodal Transformers Robust to Missing Modality?", CVPR 2022).
* :class:`EmbeddingImputer` — predicts each modality's embedding from the present others (Ma et
  al., "SMIL: Multimodal Learning with Severely Missing Modality", AAAI 2021), trained with
  :func:`~modalab.objectives.imputation.imputation_loss` only where the target is observed.
* :func:`fill_missing` — put a replacement into the absent rows, keep the present rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["AbsentEmbeddings", "EmbeddingImputer", "fill_missing"]


def fill_missing(
    embeddings: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    replacement: Mapping[str, Tensor],
) -> dict[str, Tensor]:
    """Rows where a modality is absent take the replacement; present rows are unchanged.

    Args:
        embeddings: Modality → ``[B, D]``.
        present: Modality → ``[B]`` bool.
        replacement: Modality → ``[B, D]`` or ``[D]`` (broadcast); modalities without one are
            returned unchanged.

    Returns:
        Modality → ``[B, D]``.

    Example:
        >>> e = {"a": torch.ones(2, 2)}
        >>> fill_missing(e, {"a": torch.tensor([True, False])}, {"a": torch.zeros(2)})["a"].tolist()
        [[1.0, 1.0], [0.0, 0.0]]
    """
    out = {}
    for name, value in embeddings.items():
        if name in replacement:
            fill = replacement[name].to(value.dtype).expand_as(value)
            out[name] = torch.where(present[name].unsqueeze(-1), value, fill)
        else:
            out[name] = value
    return out


class AbsentEmbeddings(nn.Module):
    """One learned embedding per modality, used where that modality is absent.

    Args:
        modalities: Modality names.
        dim: Embedding dimension.

    Example:
        >>> absent = AbsentEmbeddings(["a"], 2)
        >>> _ = absent.vectors["a"].data.fill_(7.0)
        >>> absent({"a": torch.ones(2, 2)}, {"a": torch.tensor([True, False])})["a"].tolist()
        [[1.0, 1.0], [7.0, 7.0]]
    """

    def __init__(self, modalities: Sequence[str], dim: int) -> None:
        super().__init__()
        self.vectors = nn.ParameterDict({m: nn.Parameter(torch.zeros(dim)) for m in modalities})

    def forward(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Embeddings with absent rows replaced by the modality's learned vector."""
        return fill_missing(embeddings, present, dict(self.vectors))


class EmbeddingImputer(nn.Module):
    """Predict each modality's embedding from the other modalities' embeddings.

    The input of the predictor of modality ``m`` is the concatenation of the other modalities'
    embeddings with absent ones zeroed, followed by their presence flags, so that it can tell
    "absent" from "a zero embedding".

    Args:
        modalities: Modality names (at least two).
        dim: Embedding dimension (shared by all modalities).
        hidden: Hidden width of each predictor MLP.

    Example:
        >>> imputer = EmbeddingImputer(["a", "b"], 4, hidden=8)
        >>> e = {"a": torch.randn(3, 4), "b": torch.randn(3, 4)}
        >>> p = {"a": torch.ones(3, dtype=torch.bool), "b": torch.tensor([True, False, True])}
        >>> guess, has_source = imputer(e, p)
        >>> tuple(guess["b"].shape), has_source["b"].tolist()
        ((3, 4), [True, True, True])
    """

    def __init__(self, modalities: Sequence[str], dim: int, hidden: int = 128) -> None:
        super().__init__()
        if len(modalities) < 2:
            raise ValueError(
                f"Imputation needs at least two modalities to predict one from the others, "
                f"got {list(modalities)}."
            )
        self.modalities = tuple(modalities)
        in_dim = (len(modalities) - 1) * (dim + 1)
        self.predictors = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
                for m in modalities
            }
        )

    def forward(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Predicted embeddings and, per modality, whether any source modality was present.

        Args:
            embeddings: Modality → ``[B, D]``.
            present: Modality → ``[B]`` bool.

        Returns:
            ``(predicted {m: [B, D]}, has_source {m: [B] bool})``.
        """
        predicted: dict[str, Tensor] = {}
        has_source: dict[str, Tensor] = {}
        for target in self.modalities:
            sources = [m for m in self.modalities if m != target]
            flags = torch.stack([present[m] for m in sources], dim=1)
            parts = [
                embeddings[m] * present[m].unsqueeze(-1).to(embeddings[m].dtype) for m in sources
            ]
            x = torch.cat([*parts, flags.to(parts[0].dtype)], dim=1)
            predicted[target] = self.predictors[target](x)
            has_source[target] = flags.any(dim=1)
        return predicted, has_source
