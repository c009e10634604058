"""Label scarcity and unreliable labels.

Label scarcity hides labels (``label_observed`` False) from every training phase it applies to;
label noise changes ``label`` and keeps ``clean_label`` apart, for evaluation only. Noise
models: symmetric (uniform over the other classes) and class-conditional pair flipping
``c -> c + 1 mod C`` (Patrini et al., "Making Deep Neural Networks Robust to Label Noise: a
Loss Correction Approach", CVPR 2017; Han et al., "Co-teaching", NeurIPS 2018).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.scenarios.base import Scenario, check_fraction
from modalab.scenarios.registry import SCENARIOS

__all__ = ["LabelNoise", "LabelScarcity"]


@SCENARIOS.register("label_scarcity")
@dataclass
class LabelScarcity(Scenario):
    """Only a class-stratified fraction (or ``k`` per class) of labels observed.

    For each class, ``round(fraction * n_c)`` labels (at least one when ``fraction > 0``) or
    ``min(per_class, n_c)`` labels are kept observed, chosen uniformly; already unobserved
    labels stay unobserved.

    Attributes:
        fraction: Fraction of labels observed (the severity: lower is scarcer).
        per_class: If positive, keep this many labels per class instead of ``fraction``.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset({"a": torch.zeros(100, 1)}, label=torch.arange(100) % 4)
        >>> out = LabelScarcity(fraction=0.2).set_random_state(0)(ds)
        >>> torch.bincount(out.label[out.label_observed]).tolist()
        [5, 5, 5, 5]
    """

    severity_param = "fraction"
    harder = "lower"
    labels_only = True
    stage: list[str] = field(default_factory=lambda: ["pretrain", "downstream"])
    fraction: float = 1.0
    per_class: int = 0

    @classmethod
    def unchanged_by(cls, params: Mapping[str, Any]) -> bool:
        """Every label kept: ``fraction`` 1 and no ``per_class`` limit.

        Example:
            >>> LabelScarcity.unchanged_by({"fraction": 1.0}), LabelScarcity.unchanged_by(
            ...     {"fraction": 1.0, "per_class": 5})
            (True, False)
        """
        return float(params.get("fraction", 1.0)) == 1.0 and int(params.get("per_class", 0)) <= 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.fraction, "scenario label_scarcity.fraction")
        if self.per_class < 0:
            raise ValueError(f"scenario label_scarcity.per_class must be >= 0: {self.per_class}.")

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the observed labels of each class."""
        keep = torch.zeros(len(dataset), dtype=torch.bool)
        order = torch.randperm(len(dataset), generator=self.generator)
        label = dataset.label[order]
        for c in range(dataset.num_classes):
            rows = order[label == c]
            if self.per_class > 0:
                k = min(self.per_class, rows.numel())
            else:
                k = round(self.fraction * rows.numel())
                k = max(k, 1) if self.fraction > 0 and rows.numel() else k
            keep[rows[:k]] = True
        self._keep = keep

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Hide the labels not drawn."""
        return dataset.replace(label_observed=dataset.label_observed & self._keep)


_NOISE_MODES = ("symmetric", "asymmetric")


@SCENARIOS.register("label_noise")
@dataclass
class LabelNoise(Scenario):
    """Wrong labels at a given rate, symmetric or class-conditional; clean labels kept apart.

    Each label is corrupted with probability ``rate``: ``symmetric`` replaces it with a class
    drawn uniformly among the *other* classes (so ``rate`` is the realised error rate);
    ``asymmetric`` flips class ``c`` to ``(c + 1) mod C``. ``clean_label`` is unchanged.

    Attributes:
        rate: Probability that a label is wrong (the severity).
        mode: ``symmetric`` or ``asymmetric``.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset({"a": torch.zeros(4000, 1)}, label=torch.arange(4000) % 4)
        >>> out = LabelNoise(rate=0.3, mode="asymmetric").set_random_state(0)(ds)
        >>> wrong = out.label != out.clean_label
        >>> round(wrong.float().mean().item(), 2)
        0.3
        >>> bool((out.label[wrong] == (out.clean_label[wrong] + 1) % 4).all())
        True
    """

    severity_param = "rate"
    harder = "higher"
    labels_only = True
    stage: list[str] = field(default_factory=lambda: ["pretrain", "downstream"])
    rate: float = 0.0
    mode: str = "symmetric"

    @classmethod
    def unchanged_by(cls, params: Mapping[str, Any]) -> bool:
        """No label flipped: ``rate`` 0, whatever the mode.

        Example:
            >>> LabelNoise.unchanged_by({"rate": 0.0, "mode": "asymmetric"})
            True
        """
        return float(params.get("rate", 0.0)) == 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.rate, "scenario label_noise.rate")
        if self.mode not in _NOISE_MODES:
            raise ValueError(
                f"scenario label_noise.mode={self.mode!r} is unknown; valid: {list(_NOISE_MODES)}."
            )

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw which labels flip and their offsets."""
        n = len(dataset)
        if dataset.num_classes < 2:
            raise ValueError("scenario label_noise needs at least two classes.")
        flip = torch.rand(n, generator=self.generator) < self.rate
        offset = torch.randint(1, dataset.num_classes, (n,), generator=self.generator)
        if self.mode == "asymmetric":
            offset = torch.ones_like(offset)
        self._draw = (flip, offset)

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Replace the drawn labels; ``clean_label`` is kept."""
        flip, offset = self._draw
        noisy = torch.where(flip, (dataset.label + offset) % dataset.num_classes, dataset.label)
        return dataset.replace(label=noisy, clean_label=dataset.clean_label)
