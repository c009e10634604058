"""A multimodal dataset whose samples index shared pools of unique inputs.

AV-MNIST pairs 70,000 images with about 3,000 recordings: storing one spectrogram per sample
repeats each one ~20 times. :class:`IndexedMultimodalDataset` keeps one *pool* per modality
(the unique inputs, e.g. memory-mapped half-precision spectrograms) and one row index per
sample; a batch gathers its rows from the pools and converts them to ``float32``. It is a
:class:`~modalab.data.MultimodalTensorDataset`, so loaders, methods and evaluators work
unchanged; code that reads ``dataset.inputs`` directly (scenarios) gets the materialised
tensors (built once, on first access).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset

__all__ = ["IndexedMultimodalDataset"]


class IndexedMultimodalDataset(MultimodalTensorDataset):
    """Samples as rows of shared pools: ``inputs[m][i] = pools[m][rows[m][i]] / divisor[m]``.

    Args:
        pools: One tensor ``[U_m, ...]`` of unique inputs per modality (any dtype; gathered
            rows are converted to ``float32``).
        rows: One ``[N]`` index into its pool per modality.
        label: Labels ``[N]``.
        divisor: Optional divisor per modality applied after the conversion (e.g. 255 for
            ``uint8`` pixels).
        **fields: ``present``, ``label_observed``, ``clean_label``, ``index``, ``num_classes``,
            ``extras`` as in :class:`~modalab.data.MultimodalTensorDataset`.

    Example:
        >>> pool = torch.tensor([[0.0], [10.0], [20.0]], dtype=torch.float16)
        >>> ds = IndexedMultimodalDataset({"a": pool}, {"a": torch.tensor([2, 2, 0, 1])},
        ...                               label=torch.tensor([0, 0, 1, 1]))
        >>> ds.__getitems__([1, 3]).inputs["a"].flatten().tolist(), ds.inputs["a"].dtype
        ([20.0, 10.0], torch.float32)
    """

    def __init__(
        self,
        pools: Mapping[str, Tensor],
        rows: Mapping[str, Tensor],
        label: Tensor,
        divisor: Mapping[str, float] | None = None,
        **fields: Any,
    ) -> None:
        if set(pools) != set(rows):
            raise ValueError(
                f"pools {sorted(pools)} and rows {sorted(rows)} name other modalities."
            )
        n = int(label.shape[0])
        for name, index in rows.items():
            if index.shape != (n,):
                raise ValueError(f"rows[{name!r}] has shape {tuple(index.shape)}, expected ({n},).")
            if n and (int(index.min()) < 0 or int(index.max()) >= pools[name].shape[0]):
                raise ValueError(f"rows[{name!r}] indexes outside its pool of {len(pools[name])}.")
        self._pools = dict(pools)
        self._rows = {k: v.long() for k, v in rows.items()}
        self._divisor = dict(divisor or {})
        self._materialised: dict[str, Tensor] | None = None
        present = dict(fields.pop("present", None) or {})
        super().__init__(inputs={}, label=label, **fields)
        self.present = {
            m: present.get(m, torch.ones(n, dtype=torch.bool)).bool() for m in self._rows
        }

    @property  # type: ignore[override]
    def inputs(self) -> dict[str, Tensor]:
        """All samples' inputs, materialised as ``float32`` on first access (memory!)."""
        if self._materialised is None:
            everything = torch.arange(len(self))
            self._materialised = {m: self._gather(m, everything) for m in self._rows}
        return self._materialised

    @inputs.setter
    def inputs(self, value: Mapping[str, Tensor]) -> None:
        if value:
            raise TypeError("IndexedMultimodalDataset inputs come from its pools; use replace().")

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return tuple(self._rows)

    @property
    def pools(self) -> dict[str, Tensor]:
        """The unique inputs per modality."""
        return dict(self._pools)

    @property
    def rows(self) -> dict[str, Tensor]:
        """Each sample's row in its pool, per modality."""
        return dict(self._rows)

    def pool_values(self, modality: str, pool_rows: Tensor) -> Tensor:
        """Rows of a modality's pool as the samples see them (``float32``, scaled)."""
        out = self._pools[modality][pool_rows].float()
        divisor = self._divisor.get(modality)
        return out / divisor if divisor is not None else out

    def _gather(self, modality: str, rows: Tensor) -> Tensor:
        return self.pool_values(modality, self._rows[modality][rows])

    def __getitems__(self, indices: Sequence[int] | Tensor) -> MultimodalBatch:
        """The batch of ``indices``: one gather per modality from its pool."""
        rows = torch.as_tensor(indices, dtype=torch.long)
        return MultimodalBatch(
            inputs={m: self._gather(m, rows) for m in self._rows},
            present={k: v[rows] for k, v in self.present.items()},
            label=self.label[rows],
            label_observed=self.label_observed[rows],
            clean_label=self.clean_label[rows],
            index=self.index[rows],
            extras={k: v[rows] for k, v in self.extras.items()},
        )

    def _fields(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "present": self.present,
            "label_observed": self.label_observed,
            "clean_label": self.clean_label,
            "index": self.index,
            "num_classes": self.num_classes,
            "extras": self.extras,
        }

    def subset(self, rows: Tensor | Sequence[int]) -> IndexedMultimodalDataset:
        """The dataset restricted to ``rows``; the pools are shared, not copied."""
        r = torch.as_tensor(rows, dtype=torch.long)
        fields = self._fields()
        for key in ("label", "label_observed", "clean_label", "index"):
            fields[key] = fields[key][r]
        fields["present"] = {k: v[r] for k, v in self.present.items()}
        fields["extras"] = {k: v[r] for k, v in self.extras.items()}
        label = fields.pop("label")
        return IndexedMultimodalDataset(
            self._pools, {m: v[r] for m, v in self._rows.items()}, label, self._divisor, **fields
        )

    def replace(self, **changes: Any) -> MultimodalTensorDataset:
        """A copy with some fields replaced; replacing ``inputs`` materialises a plain dataset."""
        fields = self._fields()
        unknown = set(changes) - set(fields) - {"inputs"}
        if unknown:
            raise TypeError(f"Unknown fields {sorted(unknown)}; valid: {sorted(fields)}.")
        fields.update(changes)
        if "inputs" in changes:
            return MultimodalTensorDataset(**fields)
        label = fields.pop("label")
        return IndexedMultimodalDataset(self._pools, self._rows, label, self._divisor, **fields)
