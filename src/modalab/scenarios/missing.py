"""Missing modalities: a whole modality absent for a sample, and the semi-paired setting.

Absence is data, never features dropped: the modality's input is zero-filled and its
``present`` mask set to False, so that every model, loss and metric sees it (the batch
contract). See Ma et al., "SMIL: Multimodal Learning with Severely Missing Modality"
(AAAI 2021) and Ma et al., "Are Multimodal Transformers Robust to Missing Modality?"
(CVPR 2022) for the settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from modalab.data.presence import drop_modalities
from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.scenarios.base import Scenario, check_fraction, check_modalities, zero_fill
from modalab.scenarios.registry import SCENARIOS

__all__ = ["MissingModality", "SemiPaired"]

_MISSING_MODES = ("independent", "at_least_one")


def _drop(dataset: MultimodalTensorDataset, absent: dict[str, Tensor]) -> MultimodalTensorDataset:
    """Mark ``absent`` rows of each modality as not present and zero-fill their inputs."""
    inputs = dict(dataset.inputs)
    present = dict(dataset.present)
    for name, rows in absent.items():
        inputs[name] = zero_fill(inputs[name], rows)
        present[name] = present[name] & ~rows
    return dataset.replace(inputs=inputs, present=present)


@SCENARIOS.register("missing")
@dataclass
class MissingModality(Scenario):
    """Whole modalities absent for a random fraction of samples (``present`` False).

    Each listed modality is absent for each sample with probability ``rate`` (or its entry in
    ``rates``), independently across modalities; the masks come from
    :func:`~modalab.data.presence.drop_modalities`, the sampler of every missing-modality path.
    With ``mode="at_least_one"`` (its ``keep_one``), a sample whose modalities would all be
    absent gets one of the modalities dropped by this draw back (chosen uniformly), so that
    every sample keeps at least one modality; the realised rate of each of ``M`` modalities
    missing at equal rate ``r`` is then ``r - r**M / M`` (as in modality dropout).
    ``rate=1`` with ``stage=[test]`` is whole-modality absence at test time.

    Attributes:
        rate: Probability that a listed modality is absent for a sample (the severity).
        modalities: Modalities that can go missing; empty means every modality.
        rates: Per-modality rates overriding ``rate`` (e.g. ``{audio: 0.8}``).
        mode: ``independent`` or ``at_least_one``.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset(
        ...     {"a": torch.ones(1000, 2), "b": torch.ones(1000, 3)}, label=torch.zeros(1000).long()
        ... )
        >>> out = MissingModality(rate=0.3, modalities=["b"]).set_random_state(0)(ds)
        >>> round(1 - out.present["b"].float().mean().item(), 1), out.present["a"].all().item()
        (0.3, True)
        >>> bool((out.inputs["b"][~out.present["b"]] == 0).all())
        True
    """

    severity_param = "rate"
    harder = "higher"
    rate: float = 0.0
    modalities: list[str] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)
    mode: str = "independent"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.rate, "scenario missing.rate")
        for name, value in self.rates.items():
            check_fraction(value, f"scenario missing.rates.{name}")
        if self.mode not in _MISSING_MODES:
            raise ValueError(
                f"scenario missing.mode={self.mode!r} is unknown; valid: {list(_MISSING_MODES)}."
            )

    def _targets(self, dataset: MultimodalTensorDataset) -> list[str]:
        names = list(self.modalities) or list(dataset.modalities)
        check_modalities([*names, *self.rates], dataset, "scenario missing")
        return sorted(set(names) | set(self.rates), key=list(dataset.modalities).index)

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw which samples lose which modality (with ``drop_modalities``)."""
        targets = self._targets(dataset)
        present = drop_modalities(
            dataset.present,
            {m: self.rates.get(m, self.rate) for m in targets},
            self.generator,
            keep_one=self.mode == "at_least_one",
        )
        self._absent = {m: ~present[m] for m in targets}

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Zero-fill and unmark the drawn modalities."""
        return _drop(dataset, self._absent)


@SCENARIOS.register("semi_paired")
@dataclass
class SemiPaired(Scenario):
    """A fraction of samples fully paired; every other sample keeps a single modality.

    Exactly ``round((1 - paired_fraction) * N)`` samples, chosen uniformly, become unimodal:
    each keeps one of ``modalities`` (uniformly chosen) and loses every other modality.

    Attributes:
        stage: Phases it applies to; by default the training phases.
        paired_fraction: Fraction of samples that keep all their modalities (the severity:
            lower is harder).
        modalities: Modalities an unpaired sample may keep; empty means every modality.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset(
        ...     {"a": torch.ones(100, 2), "b": torch.ones(100, 3)}, label=torch.zeros(100).long()
        ... )
        >>> out = SemiPaired(paired_fraction=0.4).set_random_state(0)(ds)
        >>> both = out.present["a"] & out.present["b"]
        >>> int(both.sum()), bool((out.present["a"] | out.present["b"]).all())
        (40, True)
    """

    severity_param = "paired_fraction"
    harder = "lower"
    stage: list[str] = field(default_factory=lambda: ["pretrain", "downstream"])
    paired_fraction: float = 1.0
    modalities: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.paired_fraction, "scenario semi_paired.paired_fraction")

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the unpaired samples and the modality each keeps."""
        keep_from = list(self.modalities) or list(dataset.modalities)
        check_modalities(keep_from, dataset, "scenario semi_paired")
        n = len(dataset)
        n_unpaired = round((1 - self.paired_fraction) * n)
        unpaired = torch.zeros(n, dtype=torch.bool)
        unpaired[torch.randperm(n, generator=self.generator)[:n_unpaired]] = True
        kept = torch.randint(len(keep_from), (n,), generator=self.generator)
        self._absent = {
            m: unpaired & ~(kept == keep_from.index(m)) if m in keep_from else unpaired
            for m in dataset.modalities
        }

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Drop every modality but the kept one from the unpaired samples."""
        return _drop(dataset, self._absent)
