"""Scenarios: the obstacles real multimodal data has, applied to whole splits.

Missing and semi-paired modalities, noisy modalities (Gaussian noise at an SNR, occlusion,
blur, real background noise, word dropout), unbalanced modalities (lower resolution),
misaligned pairs, label scarcity and label noise. Each is a seeded, keyed transform
registered in :data:`SCENARIOS`; see ``docs/scenarios.md``.
"""

from modalab.scenarios.base import STAGES, Scenario
from modalab.scenarios.compose import (
    apply_scenarios,
    build_scenarios,
    fitted_under_test,
    scenario_seed,
)
from modalab.scenarios.imbalance import Downsample
from modalab.scenarios.labels import LabelNoise, LabelScarcity
from modalab.scenarios.misalign import Misalignment
from modalab.scenarios.missing import MissingModality, SemiPaired
from modalab.scenarios.noise import (
    BackgroundNoise,
    Blur,
    GaussianNoise,
    Occlusion,
    WordDropout,
    signal_power,
    snr_db,
)
from modalab.scenarios.registry import SCENARIOS

__all__ = [
    "SCENARIOS",
    "STAGES",
    "BackgroundNoise",
    "Blur",
    "Downsample",
    "GaussianNoise",
    "LabelNoise",
    "LabelScarcity",
    "Misalignment",
    "MissingModality",
    "Occlusion",
    "Scenario",
    "SemiPaired",
    "WordDropout",
    "apply_scenarios",
    "build_scenarios",
    "fitted_under_test",
    "scenario_seed",
    "signal_power",
    "snr_db",
]
