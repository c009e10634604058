"""The batch contract shared by every layer of modalab.

A :class:`MultimodalBatch` carries one tensor per modality, an explicit ``present`` mask per
modality, the (possibly partially observed, possibly noisy) label, the clean label kept apart
for evaluation, and the sample index into the dataset. A missing modality is *data*: its input
is filled with zeros and ``present`` is False, so that every model, loss and metric can see it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

__all__ = ["MultimodalBatch", "collate_samples"]


@dataclass
class MultimodalBatch:
    """A batch of multimodal samples.

    Attributes:
        inputs: One batch-first tensor per modality name, e.g. ``{"image": [B, 3, H, W]}``.
        present: One boolean tensor ``[B]`` per modality: whether that modality is observed.
        label: Class labels ``[B]`` (long) as the learner sees them (possibly noisy).
        label_observed: Boolean ``[B]``: whether the label may be used for training.
        clean_label: The true labels ``[B]``, for evaluation only.
        index: Sample ids ``[B]`` (long) into the dataset the batch was drawn from.

    Example:
        >>> import torch
        >>> batch = MultimodalBatch.from_inputs(
        ...     {"image": torch.zeros(4, 3, 8, 8), "text": torch.zeros(4, 5, dtype=torch.long)},
        ...     label=torch.tensor([0, 1, 0, 1]),
        ... )
        >>> batch.batch_size, batch.modalities
        (4, ('image', 'text'))
        >>> batch.present["image"].tolist()
        [True, True, True, True]
    """

    inputs: dict[str, Tensor]
    present: dict[str, Tensor]
    label: Tensor
    label_observed: Tensor
    clean_label: Tensor
    index: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("A MultimodalBatch needs at least one modality in `inputs`.")
        if set(self.inputs) != set(self.present):
            raise ValueError(
                f"`present` must have exactly the modalities of `inputs`: inputs has "
                f"{sorted(self.inputs)}, present has {sorted(self.present)}."
            )
        size = self.label.shape[0]
        for name, tensor in {**self.inputs, **self.present}.items():
            if tensor.shape[0] != size:
                raise ValueError(
                    f"Modality {name!r} has batch size {tensor.shape[0]} but the label has "
                    f"{size}; every tensor of a batch must be batch-first with the same size."
                )
        for name, mask in self.present.items():
            if mask.dtype != torch.bool or mask.dim() != 1:
                raise ValueError(
                    f"present[{name!r}] must be a 1-D bool tensor, got {mask.dtype} "
                    f"of shape {tuple(mask.shape)}."
                )

    @classmethod
    def from_inputs(
        cls,
        inputs: Mapping[str, Tensor],
        label: Tensor | None = None,
        present: Mapping[str, Tensor] | None = None,
        index: Tensor | None = None,
    ) -> MultimodalBatch:
        """Build a batch with every modality present and every label observed by default.

        Args:
            inputs: One batch-first tensor per modality.
            label: Labels ``[B]``; defaults to zeros with ``label_observed`` all False.
            present: Optional presence masks; missing entries default to all True.
            index: Optional sample ids; defaults to ``arange(B)``.

        Returns:
            The batch.
        """
        first = next(iter(inputs.values()))
        size = first.shape[0]
        device = first.device
        present = dict(present or {})
        full_present = {
            name: present.get(name, torch.ones(size, dtype=torch.bool, device=device))
            for name in inputs
        }
        observed = torch.ones(size, dtype=torch.bool, device=device)
        if label is None:
            label = torch.zeros(size, dtype=torch.long, device=device)
            observed = torch.zeros_like(observed)
        if index is None:
            index = torch.arange(size, device=device)
        return cls(
            inputs=dict(inputs),
            present=full_present,
            label=label,
            label_observed=observed,
            clean_label=label.clone(),
            index=index,
        )

    @property
    def batch_size(self) -> int:
        """Number of samples in the batch."""
        return int(self.label.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names, in insertion order."""
        return tuple(self.inputs)

    def select(self, rows: Tensor) -> MultimodalBatch:
        """Return the sub-batch of the given rows (a long index or a bool mask)."""
        return MultimodalBatch(
            inputs={k: v[rows] for k, v in self.inputs.items()},
            present={k: v[rows] for k, v in self.present.items()},
            label=self.label[rows],
            label_observed=self.label_observed[rows],
            clean_label=self.clean_label[rows],
            index=self.index[rows],
            extras={k: v[rows] for k, v in self.extras.items()},
        )

    def with_modalities(self, names: Sequence[str]) -> MultimodalBatch:
        """Return the batch restricted to the given modalities (in that order)."""
        unknown = [n for n in names if n not in self.inputs]
        if unknown:
            raise KeyError(f"Unknown modalities {unknown}; the batch has {list(self.inputs)}.")
        return replace(
            self,
            inputs={n: self.inputs[n] for n in names},
            present={n: self.present[n] for n in names},
        )

    def to(self, device: torch.device | str) -> MultimodalBatch:
        """Move every tensor of the batch to ``device``."""
        return MultimodalBatch(
            inputs={k: v.to(device) for k, v in self.inputs.items()},
            present={k: v.to(device) for k, v in self.present.items()},
            label=self.label.to(device),
            label_observed=self.label_observed.to(device),
            clean_label=self.clean_label.to(device),
            index=self.index.to(device),
            extras={k: v.to(device) for k, v in self.extras.items()},
        )


def collate_samples(
    samples: Sequence[Mapping[str, object]], modalities: Sequence[str]
) -> MultimodalBatch:
    """Collate per-sample dictionaries into a batch, filling absent modalities.

    This is the path for datasets read one sample at a time (files on disk). Each sample is a
    mapping with an ``"inputs"`` dict (a modality may be missing from it, or be ``None``), a
    ``"label"`` int and an ``"index"`` int. An absent modality is filled with zeros shaped like
    the first sample that has it, and marked ``present=False``.

    Args:
        samples: The samples.
        modalities: The modality names every batch must have.

    Returns:
        The collated batch.

    Raises:
        ValueError: If no sample in the batch has a given modality (its shape is unknown).

    Example:
        >>> import torch
        >>> s0 = {"inputs": {"a": torch.ones(2), "b": torch.ones(3)}, "label": 1, "index": 0}
        >>> s1 = {"inputs": {"a": torch.ones(2)}, "label": 0, "index": 1}
        >>> batch = collate_samples([s0, s1], ["a", "b"])
        >>> batch.present["b"].tolist(), batch.inputs["b"][1].tolist()
        ([True, False], [0.0, 0.0, 0.0])
    """
    inputs: dict[str, Tensor] = {}
    present: dict[str, Tensor] = {}
    for name in modalities:
        values = [s["inputs"].get(name) for s in samples]  # type: ignore[attr-defined]
        template = next((v for v in values if v is not None), None)
        if template is None:
            raise ValueError(
                f"No sample of this batch has modality {name!r}, so its shape is unknown; "
                "give the dataset a fill shape or drop the modality."
            )
        assert isinstance(template, Tensor)
        inputs[name] = torch.stack(
            [v if v is not None else torch.zeros_like(template) for v in values]  # type: ignore[misc]
        )
        present[name] = torch.tensor([v is not None for v in values], dtype=torch.bool)
    label = torch.tensor([int(s["label"]) for s in samples], dtype=torch.long)  # type: ignore[call-overload]
    index = torch.tensor([int(s["index"]) for s in samples], dtype=torch.long)  # type: ignore[call-overload]
    return MultimodalBatch(
        inputs=inputs,
        present=present,
        label=label,
        label_observed=torch.ones_like(label, dtype=torch.bool),
        clean_label=label.clone(),
        index=index,
    )
