"""In-memory multimodal datasets that batch by indexing.

Small datasets are held as tensors; a batch is one fancy-indexing operation per modality, not a
Python ``__getitem__`` per sample. :class:`MultimodalTensorDataset` implements
``__getitems__`` so that a standard :class:`torch.utils.data.DataLoader` (and therefore
Lightning, which swaps in a ``DistributedSampler`` under DDP) hands it a whole list of indices at
once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from modalab.data.batch import MultimodalBatch

__all__ = ["MultimodalTensorDataset", "Splits", "make_loader"]


class MultimodalTensorDataset(Dataset[MultimodalBatch]):
    """A dataset held in memory as one tensor per modality.

    Args:
        inputs: One tensor ``[N, ...]`` per modality.
        label: Labels ``[N]``.
        present: Optional presence masks ``[N]`` per modality (default: all present).
        label_observed: Optional mask ``[N]`` of labels usable for training (default: all).
        clean_label: Optional clean labels ``[N]`` (default: ``label``).
        index: Optional sample ids ``[N]`` (default: ``arange(N)``).
        num_classes: Number of classes (default: ``label.max() + 1``).

    Example:
        >>> import torch
        >>> ds = MultimodalTensorDataset(
        ...     {"a": torch.arange(10.0).view(10, 1)}, label=torch.arange(10) % 2
        ... )
        >>> batch = ds.__getitems__([3, 7])
        >>> batch.inputs["a"].flatten().tolist(), batch.label.tolist()
        ([3.0, 7.0], [1, 1])
    """

    def __init__(
        self,
        inputs: Mapping[str, Tensor],
        label: Tensor,
        present: Mapping[str, Tensor] | None = None,
        label_observed: Tensor | None = None,
        clean_label: Tensor | None = None,
        index: Tensor | None = None,
        num_classes: int | None = None,
    ) -> None:
        n = int(label.shape[0])
        for name, tensor in inputs.items():
            if tensor.shape[0] != n:
                raise ValueError(
                    f"Modality {name!r} has {tensor.shape[0]} samples but there are {n} labels."
                )
        present = dict(present or {})
        self.inputs = dict(inputs)
        self.present = {
            name: present.get(name, torch.ones(n, dtype=torch.bool)).bool() for name in inputs
        }
        self.label = label.long()
        self.label_observed = (
            label_observed.bool() if label_observed is not None else torch.ones(n, dtype=torch.bool)
        )
        self.clean_label = clean_label.long() if clean_label is not None else self.label.clone()
        self.index = index.long() if index is not None else torch.arange(n)
        self.num_classes = int(num_classes) if num_classes is not None else int(label.max()) + 1
        if (n and int(self.label.max()) >= self.num_classes) or (n and int(self.label.min()) < 0):
            raise ValueError(
                f"Labels must lie in [0, {self.num_classes}); got range "
                f"[{int(self.label.min())}, {int(self.label.max())}]."
            )

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return tuple(self.inputs)

    def __getitem__(self, i: int) -> MultimodalBatch:
        return self.__getitems__([i])

    def __getitems__(self, indices: Sequence[int] | Tensor) -> MultimodalBatch:
        """Return the batch of the given indices in one indexing operation per tensor."""
        rows = torch.as_tensor(indices, dtype=torch.long)
        return MultimodalBatch(
            inputs={k: v[rows] for k, v in self.inputs.items()},
            present={k: v[rows] for k, v in self.present.items()},
            label=self.label[rows],
            label_observed=self.label_observed[rows],
            clean_label=self.clean_label[rows],
            index=self.index[rows],
        )

    def subset(self, rows: Tensor | Sequence[int]) -> MultimodalTensorDataset:
        """Return the dataset restricted to ``rows`` (ids in ``index`` are kept)."""
        r = torch.as_tensor(rows, dtype=torch.long)
        return MultimodalTensorDataset(
            inputs={k: v[r] for k, v in self.inputs.items()},
            label=self.label[r],
            present={k: v[r] for k, v in self.present.items()},
            label_observed=self.label_observed[r],
            clean_label=self.clean_label[r],
            index=self.index[r],
            num_classes=self.num_classes,
        )

    def replace(self, **changes: Any) -> MultimodalTensorDataset:
        """Return a copy with some fields replaced (``inputs``, ``present``, ``label``, ...)."""
        fields: dict[str, Any] = {
            "inputs": self.inputs,
            "label": self.label,
            "present": self.present,
            "label_observed": self.label_observed,
            "clean_label": self.clean_label,
            "index": self.index,
            "num_classes": self.num_classes,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Unknown fields {sorted(unknown)}; valid: {sorted(fields)}.")
        fields.update(changes)
        return MultimodalTensorDataset(**fields)

    def full_batch(self) -> MultimodalBatch:
        """The whole dataset as one batch."""
        return self.__getitems__(torch.arange(len(self)))


@dataclass
class Splits:
    """Train / validation / test splits of one dataset, with its metadata.

    Attributes:
        train: Training split (pre-training and probe training).
        val: Validation split (probe regularisation, early stopping).
        test: Test split (reported metrics only).
        num_classes: Number of classes of the downstream label.
        info: Free-form metadata (ground truth of a synthetic dataset, file provenance, ...).
    """

    train: MultimodalTensorDataset
    val: MultimodalTensorDataset
    test: MultimodalTensorDataset
    num_classes: int
    info: dict[str, Any]

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return self.train.modalities


def _identity(batch: MultimodalBatch) -> MultimodalBatch:
    return batch


def make_loader(
    dataset: MultimodalTensorDataset,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
) -> DataLoader[MultimodalBatch]:
    """A DataLoader that hands whole index lists to ``__getitems__``.

    Args:
        dataset: The in-memory dataset.
        batch_size: Samples per batch.
        shuffle: Whether to reshuffle each epoch (with a generator seeded by ``seed``).
        drop_last: Whether to drop the last incomplete batch.
        seed: Seed of the shuffling generator.

    Returns:
        The loader; Lightning may replace its sampler with a distributed one.
    """
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=_identity,
        generator=generator,
        num_workers=0,
    )
