"""The scenario base class: a keyed, seeded transform of a whole in-memory split.

A scenario is an obstacle applied to data — a missing, noisy, unbalanced or misaligned
modality, scarce or wrong labels. It maps a
:class:`~modalab.data.tensor_dataset.MultimodalTensorDataset` (a whole split, vectorised) to a
new one and never modifies its input. Like MONAI's ``Randomizable`` transforms it owns its
random state (:meth:`Scenario.set_random_state`) and makes every random draw in
:meth:`Scenario.randomize`, so that the same seed gives the same obstacle whatever the method
that runs on it. The global torch/NumPy generators are never used.

Each scenario also says *when* it applies — its ``stage``:

* ``pretrain``: the training split as the method (self-supervised or supervised) sees it;
* ``downstream``: the training split as the evaluation probes see it;
* ``val``: the validation split (model selection); clean unless asked;
* ``test``: the test split the reported metrics are computed on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset

__all__ = ["STAGES", "Scenario", "check_fraction", "check_modalities", "zero_fill"]

#: The phases a scenario can apply to.
STAGES: tuple[str, ...] = ("pretrain", "downstream", "val", "test")


def check_fraction(value: float, what: str, allow_one: bool = True) -> None:
    """Raise ``ValueError`` unless ``value`` is a probability (``[0, 1]`` or ``[0, 1)``)."""
    upper_ok = value <= 1 if allow_one else value < 1
    if not (value >= 0 and upper_ok):
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{what} must be in {bound}, got {value}.")


def check_modalities(names: Sequence[str], dataset: MultimodalTensorDataset, what: str) -> None:
    """Raise ``ValueError`` if a modality named by a scenario is not in the dataset."""
    unknown = [n for n in names if n not in dataset.inputs]
    if unknown:
        raise ValueError(
            f"{what} names modalities {unknown} that the data does not have; its modalities "
            f"are {list(dataset.modalities)}."
        )


def zero_fill(tensor: Tensor, rows: Tensor) -> Tensor:
    """A copy of ``tensor`` whose rows where ``rows`` is True are zero (the fill of absence)."""
    shape = (-1,) + (1,) * (tensor.dim() - 1)
    return torch.where(rows.view(shape), torch.zeros((), dtype=tensor.dtype), tensor)


@dataclass
class Scenario(ABC):
    """Base class of scenarios: plain typed parameters, a stage and a private generator.

    Subclasses are dataclasses whose fields are their parameters (so that a scenario is its
    own structured config), name their severity parameter in :attr:`severity_param` (and in
    :attr:`harder` whether ``"higher"`` or ``"lower"`` values are harder), draw
    their random quantities in :meth:`randomize` and apply them in :meth:`transform`.

    Attributes:
        stage: The phases the scenario applies to (see :data:`STAGES`); by default every
            phase but validation, which stays clean for model selection unless asked.
    """

    severity_param: ClassVar[str] = ""
    harder: ClassVar[str] = "higher"  # does a higher or a lower severity value mean harder?
    #: The scenario changes only ``label`` / ``label_observed``: a method whose training reads
    #: no label trains the same model under it (:func:`modalab.experiments.runner.training_key`).
    labels_only: ClassVar[bool] = False
    stage: list[str] = field(default_factory=lambda: ["pretrain", "downstream", "test"])

    @classmethod
    def unchanged_by(cls, params: Mapping[str, Any]) -> bool:
        """Whether a scenario with these parameters leaves every dataset exactly as it is.

        Such a scenario (no label flipped, every label kept, ...) trains and evaluates what
        the data without it does; its random draws come from the scenario's own generator.
        False unless a scenario knows better.
        """
        return False

    def __post_init__(self) -> None:
        if isinstance(self.stage, str):
            self.stage = [self.stage]
        bad = [s for s in self.stage if s not in STAGES]
        if bad or not self.stage:
            raise ValueError(
                f"{type(self).__name__}.stage={list(self.stage)} must be a non-empty list of "
                f"{list(STAGES)}."
            )
        self.set_random_state(0)

    def set_random_state(self, seed: int) -> Scenario:
        """Seed the scenario's own generator; returns ``self`` for chaining."""
        self._generator = torch.Generator().manual_seed(int(seed))
        return self

    @property
    def generator(self) -> torch.Generator:
        """The scenario's private random generator."""
        return self._generator

    @property
    def severity(self) -> float:
        """The value of the severity parameter."""
        return float(getattr(self, self.severity_param))

    def applies_to(self, stage: str) -> bool:
        """Whether the scenario applies at ``stage``."""
        return stage in self.stage

    def bind(self, info: DataInfo) -> None:  # noqa: B027
        """Take data-dependent defaults (sample rate, vocabulary) from a dataset's ``info``."""

    def randomize(self, dataset: MultimodalTensorDataset) -> None:  # noqa: B027
        """Draw every random quantity for ``dataset`` (a no-op for deterministic scenarios)."""

    @abstractmethod
    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Apply the drawn quantities to ``dataset`` and return the new dataset."""

    def __call__(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Draw (:meth:`randomize`), then apply (:meth:`transform`)."""
        self.randomize(dataset)
        return self.transform(dataset)
