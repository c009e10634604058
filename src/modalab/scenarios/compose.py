"""Building scenarios from configuration and applying them to the splits of a run.

A run composes a list of scenarios (``scenario=[missing,label_noise]``); each applies at the
stages it names. The data each phase sees is:

* pre-training: the train split after the ``pretrain`` scenarios;
* probe training: the train split after the ``downstream`` scenarios;
* model selection: the validation split after the ``val`` scenarios (clean by default);
* reported metrics: the test split after the ``test`` scenarios.

Each scenario's generator is seeded from the run seed, its position and the split, never
from the method: the same configuration gives the same obstacle whatever the method, and a
scenario applied to the train split at both ``pretrain`` and ``downstream`` draws the same
samples both times (a missing modality stays missing).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits
from modalab.scenarios.base import STAGES, Scenario
from modalab.scenarios.registry import SCENARIOS

__all__ = [
    "SPLIT_OF_STAGE",
    "apply_scenarios",
    "build_scenarios",
    "fitted_under_test",
    "scenario_seed",
]

#: The split each stage draws from.
SPLIT_OF_STAGE: dict[str, str] = {
    "pretrain": "train",
    "downstream": "train",
    "val": "val",
    "test": "test",
}


def build_scenarios(
    configs: Mapping[str, Mapping[str, Any]], info: DataInfo | None = None
) -> list[Scenario]:
    """Instantiate scenarios from ``{name: parameters}`` (in order) and bind them to the data.

    Args:
        configs: Registered scenario name → its parameters (``stage`` and the scenario's own).
        info: The dataset's :class:`DataInfo` (sample rates, vocabulary) for data-dependent
            defaults.

    Returns:
        The scenarios, in composition order.

    Raises:
        KeyError: For an unknown scenario name (with the valid names).
        ValueError: For invalid parameters.

    Example:
        >>> [s.severity for s in build_scenarios({"missing": {"rate": 0.5, "stage": ["test"]}})]
        [0.5]
    """
    scenarios = []
    for name, params in configs.items():
        cls = SCENARIOS.get(name)
        scenarios.append(cls(**dict(params)))
        scenarios[-1].bind(info or DataInfo())
    return scenarios


def scenario_seed(seed: int, position: int, name: str, split: str) -> int:
    """A stable 63-bit seed for one scenario of a run on one split."""
    digest = hashlib.sha256(f"{seed}/{position}/{name}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def apply_scenarios(
    splits: Splits, scenarios: Sequence[Scenario], stage: str, seed: int = 0
) -> MultimodalTensorDataset:
    """The split that ``stage`` sees, after the scenarios that apply at that stage.

    Args:
        splits: The clean splits.
        scenarios: The run's scenarios, in composition order.
        stage: ``pretrain``, ``downstream``, ``val`` or ``test``.
        seed: The run seed.

    Returns:
        The transformed split (the clean one if no scenario applies).

    Example:
        >>> from modalab.data import make_shapes
        >>> splits = make_shapes(n_samples=100, carries={"image": ["shape"], "text": ["shape"]})
        >>> missing = build_scenarios({"missing": {"rate": 1.0, "modalities": ["text"],
        ...                                        "stage": ["test"]}})
        >>> bool(apply_scenarios(splits, missing, "test").present["text"].any())
        False
        >>> bool(apply_scenarios(splits, missing, "downstream").present["text"].all())
        True
    """
    if stage not in STAGES:
        raise ValueError(f"stage={stage!r} is unknown; valid: {list(STAGES)}.")
    split = SPLIT_OF_STAGE[stage]
    dataset: MultimodalTensorDataset = getattr(splits, split)
    for position, scenario in enumerate(scenarios):
        if not scenario.applies_to(stage):
            continue
        name = type(scenario).__name__
        scenario.set_random_state(scenario_seed(seed, position, name, split))
        dataset = scenario(dataset)
    return dataset


def fitted_under_test(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """Copies of ``scenarios`` in which every test-time obstacle also applies at ``downstream``.

    The split they give the ``downstream`` stage is the training data of a probe fitted
    *under* the obstacles it is tested on (``eval.probe_fit=both``), beside the probe fitted
    as the scenarios' own stages say. Scenarios that do not apply at test are unchanged.

    Example:
        >>> only_test = build_scenarios({"missing": {"rate": 1.0, "stage": ["test"]}})
        >>> fitted_under_test(only_test)[0].stage, only_test[0].stage
        (['test', 'downstream'], ['test'])
    """
    out = []
    for scenario in scenarios:
        twin = copy.copy(scenario)
        if scenario.applies_to("test") and not scenario.applies_to("downstream"):
            twin.stage = [*scenario.stage, "downstream"]
        out.append(twin)
    return out
