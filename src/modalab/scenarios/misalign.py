"""Misaligned pairs (noisy correspondence): a fraction of pairs whose modality is swapped.

Huang et al., "Learning with Noisy Correspondence for Cross-modal Matching" (NeurIPS 2021);
web-scale image–text data is known to hold many such pairs (Jia et al., ALIGN, ICML 2021).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.scenarios.base import Scenario, check_fraction, check_modalities
from modalab.scenarios.registry import SCENARIOS

__all__ = ["Misalignment"]


@SCENARIOS.register("misalign")
@dataclass
class Misalignment(Scenario):
    """Shuffle one modality among a fraction of samples, so that those pairs no longer match.

    Exactly ``k = round(rate * N)`` samples are chosen; their ``modality`` rows (input and
    ``present``) are permuted by a random cyclic derangement, so that every chosen sample gets
    another chosen sample's modality (``k < 2`` shuffles nothing). The bookkeeping is kept in
    ``extras``: ``misaligned`` (bool ``[N]``) and ``{modality}_source_index`` (the sample id
    whose modality each row now holds).

    Attributes:
        rate: Fraction of pairs shuffled (the severity).
        modality: The modality whose rows are shuffled; empty means the data's last modality.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset(
        ...     {"a": torch.arange(10.0).view(10, 1), "b": torch.arange(10.0).view(10, 1)},
        ...     label=torch.zeros(10).long(),
        ... )
        >>> out = Misalignment(rate=0.5).set_random_state(0)(ds)
        >>> int(out.extras["misaligned"].sum())
        5
        >>> bool((out.inputs["b"].flatten() != out.inputs["a"].flatten()).sum() == 5)
        True
    """

    severity_param = "rate"
    harder = "higher"
    stage: list[str] = field(default_factory=lambda: ["pretrain"])
    rate: float = 0.0
    modality: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.rate, "scenario misalign.rate")

    def _modality(self, dataset: MultimodalTensorDataset) -> str:
        name = self.modality or dataset.modalities[-1]
        check_modalities([name], dataset, "scenario misalign")
        return name

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the shuffled samples and their derangement."""
        n = len(dataset)
        k = round(self.rate * n)
        rows = torch.randperm(n, generator=self.generator)[: k if k >= 2 else 0]
        source = torch.arange(n)
        source[rows] = rows.roll(1)
        self._source = source

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Move the shuffled modality rows and record which rows were shuffled."""
        m = self._modality(dataset)
        source = self._source
        moved = source != torch.arange(len(dataset))
        extras = dict(dataset.extras)
        extras["misaligned"] = extras.get("misaligned", torch.zeros_like(moved)) | moved
        extras[f"{m}_source_index"] = dataset.index[source]
        return dataset.replace(
            inputs={**dataset.inputs, m: dataset.inputs[m][source]},
            present={**dataset.present, m: dataset.present[m][source]},
            extras=extras,
        )
