"""In-memory multimodal datasets that batch by indexing.

Small datasets are held as tensors; a batch is one fancy-indexing operation per modality, not a
Python ``__getitem__`` per sample. :class:`MultimodalTensorDataset` implements
``__getitems__`` so that a standard :class:`torch.utils.data.DataLoader` (and therefore
Lightning, which swaps in a ``DistributedSampler`` under DDP) hands it a whole list of indices at
once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from modalab.data.batch import MultimodalBatch

__all__ = ["DataInfo", "EpochShuffleSampler", "MultimodalTensorDataset", "Splits", "make_loader"]


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
        extras: Optional per-sample tensors ``[N, ...]`` carried along with the samples
            (bookkeeping of scenarios, e.g. which pairs were shuffled); batches get them in
            :attr:`MultimodalBatch.extras`.

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
        extras: Mapping[str, Tensor] | None = None,
    ) -> None:
        n = int(label.shape[0])
        for name, tensor in {**inputs, **(extras or {})}.items():
            if tensor.shape[0] != n:
                raise ValueError(
                    f"Tensor {name!r} (a modality or an extra) has {tensor.shape[0]} samples but "
                    f"there are {n} labels."
                )
        self.extras = dict(extras or {})
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
        if n and (int(self.label.max()) >= self.num_classes or int(self.label.min()) < 0):
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
            extras={k: v[rows] for k, v in self.extras.items()},
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
            extras={k: v[r] for k, v in self.extras.items()},
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
            "extras": self.extras,
        }
        unknown = set(changes) - set(fields)
        if unknown:
            raise TypeError(f"Unknown fields {sorted(unknown)}; valid: {sorted(fields)}.")
        fields.update(changes)
        return MultimodalTensorDataset(**fields)

    def full_batch(self) -> MultimodalBatch:
        """The whole dataset as one batch."""
        return self.__getitems__(torch.arange(len(self)))


@dataclass(frozen=True)
class DataInfo:
    """What a dataset builder says besides its tensors: one typed field per key that code reads.

    A misspelt field is an :class:`AttributeError`, not a silent ``None``; change a field with
    :func:`dataclasses.replace`.

    Attributes:
        name: The dataset's registered name.
        class_names: Names of the classes (empty where the label has no names).
        sizes: Samples per split.
        label_counts: Samples per class, per split.
        vocab_size: Vocabulary size of the token modalities.
        pad_id: Padding token id.
        mask_id: Mask token id.
        special_ids: Token ids never corrupted (padding, CLS, SEP, MASK).
        class_prompt_tokens: Tokenised class prompts ``[C, P, L]`` (zero-shot evaluation).
        sample_rates: Sample rate per audio modality.
        waveforms: Waveforms ``[R, T]`` per spectrogram modality (AV-MNIST ``keep_waveforms``).
        audio_features: Feature recipe per spectrogram modality
            (:func:`modalab.data.audio.waveform_features`).
        truth: Ground truth of a synthetic dataset, per split.
        skipped: Files skipped under ``on_error=skip`` (``{"count", "files", "errors"}``).
        leakage: Duplicates removed across splits (``{"removed", "overlaps"}``).
        manifest: The manifest file read.
        build_seconds: Wall time of the build.
        encoders: The dataset's reference encoder per modality (e.g. ``data=avmnist``'s
            MultiBench LeNets); ``model.encoders.<modality>`` overrides it.
        extra: Dataset-specific provenance (protocol, checksums, indices) no other module reads.

    Example:
        >>> info = DataInfo(name="toy", skipped={"count": 0, "files": [], "errors": []})
        >>> info.record()
        {'skipped': {'count': 0, 'files': [], 'errors': []}}
        >>> info.vocab
        Traceback (most recent call last):
        AttributeError: 'DataInfo' object has no attribute 'vocab'
    """

    name: str = ""
    class_names: list[str] = field(default_factory=list)
    sizes: dict[str, int] | None = None
    label_counts: dict[str, list[int]] | None = None
    vocab_size: int | None = None
    pad_id: int | None = None
    mask_id: int | None = None
    special_ids: list[int] | None = None
    class_prompt_tokens: torch.Tensor | None = None
    sample_rates: dict[str, int] | None = None
    waveforms: dict[str, torch.Tensor] | None = None
    audio_features: dict[str, dict[str, Any]] | None = None
    truth: dict[str, Any] | None = None
    skipped: dict[str, Any] | None = None
    leakage: dict[str, Any] | None = None
    manifest: str | None = None
    build_seconds: float | None = None
    encoders: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The part of the info a run records in ``metrics.json``: skipped files, leakage."""
        pairs = (("skipped", self.skipped), ("leakage", self.leakage))
        return {k: v for k, v in pairs if v is not None}


@dataclass
class Splits:
    """Train / validation / test splits of one dataset, with its metadata.

    Attributes:
        train: Training split (pre-training and probe training).
        val: Validation split (probe regularisation, early stopping).
        test: Test split (reported metrics only).
        num_classes: Number of classes of the downstream label.
        info: The dataset's metadata (names, vocabulary, ground truth, provenance).
    """

    train: MultimodalTensorDataset
    val: MultimodalTensorDataset
    test: MultimodalTensorDataset
    num_classes: int
    info: DataInfo

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return self.train.modalities


class EpochShuffleSampler(Sampler[int]):
    """A random permutation that is a pure function of ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` at the start of every epoch (as for a
    ``DistributedSampler``), so a run resumed from a checkpoint at epoch ``e`` sees exactly the
    order an uninterrupted run would have seen.

    Example:
        >>> s = EpochShuffleSampler(5, seed=0)
        >>> s.set_epoch(3)
        >>> first = list(s)
        >>> s.set_epoch(3)
        >>> list(s) == first and sorted(first) == [0, 1, 2, 3, 4]
        True
    """

    def __init__(self, num_samples: int, seed: int = 0) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.num_samples, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def _identity(batch: Any) -> Any:
    """``__getitems__`` already returns a batch: nothing to collate."""
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
        shuffle: Whether to reshuffle each epoch (an :class:`EpochShuffleSampler`).
        drop_last: Whether to drop the last incomplete batch.
        seed: Seed of the shuffling generator.

    Returns:
        The loader; Lightning may replace its sampler with a distributed one.
    """
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(dataset), seed) if shuffle else None,
        drop_last=drop_last,
        collate_fn=_identity,
        num_workers=0,
    )
