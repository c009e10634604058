"""Multimodal encoders, projection heads and late fusion, assembled from parts passed in.

Modalities are keys of a :class:`~torch.nn.ModuleDict`; the ``present`` mask of a batch says
which rows of a modality are observed. Encoders run on every row (absent rows hold a fill
value) and fusion modules exclude absent rows explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "ConcatFusion",
    "EmbeddingClassifier",
    "LateFusionClassifier",
    "MeanFusion",
    "MultimodalEncoder",
    "ProjectionHead",
]


class ProjectionHead(nn.Module):
    """The projection head of SimCLR/CLIP: ``Linear`` or ``Linear-BN-ReLU-Linear``.

    Args:
        in_dim: Input dimension.
        out_dim: Output dimension.
        hidden_dim: Hidden dimension of the two-layer head; ``0`` gives a single linear map
            (as in CLIP).

    Example:
        >>> ProjectionHead(8, 4, hidden_dim=16)(torch.zeros(3, 8)).shape
        torch.Size([3, 4])
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 0) -> None:
        super().__init__()
        if hidden_dim > 0:
            self.net: nn.Module = nn.Sequential(
                nn.Linear(in_dim, hidden_dim),
                nn.BatchNorm1d(hidden_dim),
                nn.ReLU(),
                nn.Linear(hidden_dim, out_dim),
            )
        else:
            self.net = nn.Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        """Project ``[B, in_dim]`` to ``[B, out_dim]``."""
        return self.net(x)


class MultimodalEncoder(nn.Module):
    """One encoder per modality, plus optional projection heads.

    Args:
        encoders: Modality name → encoder mapping inputs to ``[B, embed_dim]``.
        projections: Optional modality name → projection head (used by contrastive methods).

    Example:
        >>> enc = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
        >>> reps = enc({"a": torch.zeros(5, 3), "b": torch.zeros(5, 2)})
        >>> {k: tuple(v.shape) for k, v in reps.items()}
        {'a': (5, 4), 'b': (5, 4)}
    """

    def __init__(self, encoders: nn.ModuleDict, projections: nn.ModuleDict | None = None) -> None:
        super().__init__()
        self.encoders = encoders
        self.projections = projections if projections is not None else nn.ModuleDict()

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return tuple(self.encoders.keys())

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Representations ``{modality: [B, embed_dim]}`` of the modalities in ``inputs``."""
        return {name: self.encoders[name](x) for name, x in inputs.items() if name in self.encoders}

    def project(self, representations: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Apply each modality's projection head (identity where there is none)."""
        return {
            name: self.projections[name](r) if name in self.projections else r
            for name, r in representations.items()
        }


class MeanFusion(nn.Module):
    """Mean of the *present* modality embeddings (zeros where none is present).

    Example:
        >>> fuse = MeanFusion()
        >>> emb = {"a": torch.ones(2, 3), "b": 3 * torch.ones(2, 3)}
        >>> present = {"a": torch.tensor([True, True]), "b": torch.tensor([True, False])}
        >>> fuse(emb, present)[:, 0].tolist()
        [2.0, 1.0]
    """

    def __init__(self) -> None:
        super().__init__()

    def output_dim(self, embed_dim: int, num_modalities: int) -> int:
        """Dimension of the fused vector."""
        return embed_dim

    def forward(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Fuse ``{m: [B, D]}`` with masks ``{m: [B]}`` into ``[B, D]``."""
        names = list(embeddings)
        stacked = torch.stack([embeddings[n] for n in names], dim=1)  # [B, M, D]
        mask = torch.stack([present[n] for n in names], dim=1).to(stacked.dtype)  # [B, M]
        total = (stacked * mask.unsqueeze(-1)).sum(dim=1)
        return total / mask.sum(dim=1, keepdim=True).clamp_min(1.0)


class ConcatFusion(nn.Module):
    """Concatenation of modality embeddings, absent ones zeroed, with presence indicators.

    The indicators let a downstream head tell "absent" from "a zero embedding".

    Example:
        >>> fuse = ConcatFusion()
        >>> emb = {"a": torch.ones(2, 2), "b": torch.ones(2, 1)}
        >>> present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
        >>> fuse(emb, present).tolist()
        [[1.0, 1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0, 1.0]]
    """

    def __init__(self) -> None:
        super().__init__()

    def output_dim(self, embed_dim: int, num_modalities: int) -> int:
        """Dimension of the fused vector."""
        return num_modalities * (embed_dim + 1)

    def forward(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Fuse ``{m: [B, D_m]}`` with masks ``{m: [B]}`` into ``[B, sum(D_m) + M]``."""
        names = list(embeddings)
        parts = [embeddings[n] * present[n].to(embeddings[n].dtype).unsqueeze(-1) for n in names]
        flags = torch.stack([present[n] for n in names], dim=1).to(parts[0].dtype)
        return torch.cat([*parts, flags], dim=1)


class LateFusionClassifier(nn.Module):
    """Encoders → fusion of present modalities → classification head.

    Args:
        encoder: The per-modality encoders.
        fusion: A fusion module ``(embeddings, present) -> [B, F]``.
        head: A head mapping ``[B, F]`` to class logits.
    """

    def __init__(self, encoder: MultimodalEncoder, fusion: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.fusion = fusion
        self.head = head

    def forward(self, inputs: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]``."""
        return self.head(self.fusion(self.encoder(inputs), present))

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Logits from precomputed per-modality embeddings (for cached interventions)."""
        return self.head(self.fusion(embeddings, present))  # type: ignore[no-any-return]


@runtime_checkable
class EmbeddingClassifier(Protocol):
    """A model that classifies from per-modality embeddings and presence masks.

    ``classify(encoder(inputs), present)`` is the model's prediction on a batch, so that the
    encoders can run once and the classifier many times (counterfactual interventions, the
    accuracy of a method's own head). :class:`LateFusionClassifier` and the supervised
    recipes (``supervised``, ``supervised_robust``, ``ogm_ge``, ``grad_blend``) are ones.
    """

    @property
    def encoder(self) -> MultimodalEncoder:
        """The per-modality encoders."""
        ...

    def classify(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from ``{m: [B, D_m]}`` encoder outputs and ``{m: [B]}`` masks."""
        ...
