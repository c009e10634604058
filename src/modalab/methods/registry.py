"""The method registry: name → builder of a LightningModule recipe."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.registry import Registry

__all__ = ["METHODS", "RepresentationLearner"]


@runtime_checkable
class RepresentationLearner(Protocol):
    """What the evaluator needs of a trained method."""

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations ``{modality: [B, D]}`` (evaluated downstream)."""
        ...

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """The representations mapped into the joint space used for cross-modal retrieval."""
        ...


#: Method builders ``(encoder, num_classes, embed_dim, [example, data_info, seed], *,
#: **hyperparameters) -> LightningModule``; the encoder is a
#: :class:`~modalab.models.MultimodalEncoder` without projection heads. The keyword-only
#: hyperparameters (defaults, ``Args:`` docstring) are the config of ``method=<name>``.
METHODS: Registry[Callable[..., Any]] = Registry("method")
