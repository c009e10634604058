"""Interventions on one modality (or a set) of cached embeddings.

Each intervention answers "what if this modality had been ...": absent (``remove``, marked
absent exactly as the model sees a missing modality in training), the dataset mean (``mean``),
Gaussian noise with the dataset's per-dimension statistics (``noise``), the same modality of a
random other sample (``permute``, as in the perceptual score of Gat et al., NeurIPS 2021), or
the same modality of a sample of a chosen other class (``swap``). Interventions act on a whole
:class:`~modalab.counterfactual.predictors.EncodedSplit` with an explicit generator, so their
result does not depend on how the split is later batched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from modalab.counterfactual.predictors import EncodedSplit
from modalab.registry import Registry

__all__ = ["INTERVENTIONS", "Intervened", "intervene"]


@dataclass
class Intervened:
    """Embeddings and presence after an intervention.

    Attributes:
        embeddings: Modality → ``[N, D_m]``.
        present: Modality → ``[N]`` bool.
        donor: ``[N]`` row of the sample each intervened modality was taken from (``permute``,
            ``swap``); ``None`` for the other interventions.
    """

    embeddings: dict[str, Tensor]
    present: dict[str, Tensor]
    donor: Tensor | None = None


#: Interventions ``(split, modalities, generator, **kwargs) -> Intervened``.
INTERVENTIONS: Registry[Callable[..., Intervened]] = Registry("intervention")


def _check(split: EncodedSplit, modalities: Sequence[str]) -> None:
    unknown = [m for m in modalities if m not in split.embeddings]
    if unknown or not modalities:
        raise ValueError(
            f"Cannot intervene on {list(modalities)}: name one or more of the split's "
            f"modalities {list(split.modalities)}."
        )


def _present_stats(split: EncodedSplit, modality: str) -> tuple[Tensor, Tensor]:
    rows = split.present[modality]
    if not bool(rows.any()):
        raise ValueError(f"Modality {modality!r} is absent in every sample; it has no statistics.")
    values = split.embeddings[modality][rows]
    return values.mean(dim=0), values.std(dim=0, unbiased=False)


@INTERVENTIONS.register("remove")
def remove(
    split: EncodedSplit, modalities: Sequence[str], generator: torch.Generator | None = None
) -> Intervened:
    """Mark the modalities absent (``present=False``), as the model sees a missing modality.

    Example:
        >>> split = EncodedSplit({"a": torch.ones(3, 2)}, {"a": torch.ones(3, dtype=torch.bool)},
        ...                      torch.zeros(3, dtype=torch.long), torch.arange(3), 2)
        >>> remove(split, ["a"]).present["a"].tolist()
        [False, False, False]
    """
    _check(split, modalities)
    present = dict(split.present)
    for m in modalities:
        present[m] = torch.zeros_like(present[m])
    return Intervened(dict(split.embeddings), present)


@INTERVENTIONS.register("mean")
def replace_with_mean(
    split: EncodedSplit, modalities: Sequence[str], generator: torch.Generator | None = None
) -> Intervened:
    """Replace the modalities by their mean embedding over the present rows (marked present).

    Example:
        >>> split = EncodedSplit({"a": torch.tensor([[0.0], [2.0]])},
        ...                      {"a": torch.ones(2, dtype=torch.bool)},
        ...                      torch.zeros(2, dtype=torch.long), torch.arange(2), 2)
        >>> replace_with_mean(split, ["a"]).embeddings["a"].flatten().tolist()
        [1.0, 1.0]
    """
    _check(split, modalities)
    embeddings, present = dict(split.embeddings), dict(split.present)
    for m in modalities:
        mean, _ = _present_stats(split, m)
        embeddings[m] = mean.expand_as(embeddings[m]).clone()
        present[m] = torch.ones_like(present[m])
    return Intervened(embeddings, present)


@INTERVENTIONS.register("noise")
def replace_with_noise(
    split: EncodedSplit, modalities: Sequence[str], generator: torch.Generator | None = None
) -> Intervened:
    """Replace the modalities by Gaussian noise with their per-dimension mean and std."""
    _check(split, modalities)
    embeddings, present = dict(split.embeddings), dict(split.present)
    for m in modalities:
        mean, std = _present_stats(split, m)
        noise = torch.randn(embeddings[m].shape, generator=generator)
        embeddings[m] = mean + std * noise
        present[m] = torch.ones_like(present[m])
    return Intervened(embeddings, present)


@INTERVENTIONS.register("permute")
def permute(
    split: EncodedSplit, modalities: Sequence[str], generator: torch.Generator | None = None
) -> Intervened:
    """Take the modalities (jointly) from a random permutation of the samples.

    Example:
        >>> split = EncodedSplit({"a": torch.arange(4.0).view(4, 1)},
        ...                      {"a": torch.ones(4, dtype=torch.bool)},
        ...                      torch.zeros(4, dtype=torch.long), torch.arange(4), 2)
        >>> out = permute(split, ["a"], torch.Generator().manual_seed(0))
        >>> out.embeddings["a"].flatten().tolist() == out.donor.float().tolist()
        True
    """
    _check(split, modalities)
    donor = torch.randperm(split.num_samples, generator=generator)
    return _take_from(split, modalities, donor)


@INTERVENTIONS.register("swap")
def swap(
    split: EncodedSplit,
    modalities: Sequence[str],
    generator: torch.Generator | None = None,
    to_class: int | Tensor | None = None,
) -> Intervened:
    """Take the modalities from a random sample of another class (with them present).

    Args:
        split: The cached split.
        modalities: Modalities to swap in.
        generator: Random generator of the donor choice.
        to_class: The donor class: an int for all rows, a ``[N]`` tensor per row, or ``None``
            for a uniformly random class different from each row's label.

    Returns:
        The intervened embeddings; ``donor`` holds the donor rows.
    """
    _check(split, modalities)
    n, c = split.num_samples, split.num_classes
    if to_class is None:
        shift = torch.randint(1, c, (n,), generator=generator)
        target = (split.label + shift) % c
    else:
        target = torch.as_tensor(to_class).long().expand(n).clone()
    eligible = torch.stack([split.present[m] for m in modalities]).all(dim=0)
    donor = torch.empty(n, dtype=torch.long)
    for k in target.unique().tolist():
        pool = torch.nonzero(eligible & (split.label == k)).flatten()
        rows = torch.nonzero(target == k).flatten()
        if pool.numel() == 0:
            raise ValueError(
                f"No sample of class {k} has {list(modalities)} present to swap in; use a "
                "larger split or another class."
            )
        donor[rows] = pool[torch.randint(pool.numel(), (rows.numel(),), generator=generator)]
    return _take_from(split, modalities, donor)


def _take_from(split: EncodedSplit, modalities: Sequence[str], donor: Tensor) -> Intervened:
    embeddings, present = dict(split.embeddings), dict(split.present)
    for m in modalities:
        embeddings[m] = split.embeddings[m][donor]
        present[m] = split.present[m][donor]
    return Intervened(embeddings, present, donor)


def intervene(
    split: EncodedSplit,
    name: str,
    modalities: Sequence[str],
    seed: int = 0,
    **kwargs: Any,
) -> Intervened:
    """Apply the registered intervention ``name`` to ``modalities`` of ``split``.

    Args:
        split: The cached split.
        name: ``remove``, ``mean``, ``noise``, ``permute`` or ``swap`` (see ``INTERVENTIONS``).
        modalities: The modalities intervened on, jointly.
        seed: Seed of the intervention's generator.
        **kwargs: Extra arguments of the intervention (``to_class`` for ``swap``).

    Returns:
        The intervened embeddings and presence.
    """
    generator = torch.Generator().manual_seed(seed)
    return INTERVENTIONS.get(name)(split, list(modalities), generator, **kwargs)
