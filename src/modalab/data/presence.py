"""The one missing-modality sampler: which present entries of ``present`` masks to drop.

Every path that makes modalities missing at random — the ``missing`` scenario, modality
dropout in training (:func:`modalab.methods.tricks.modality_dropout`) and the test-time
missing-rate curves — draws its masks here, so that a rate means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

__all__ = ["drop_modalities"]


def drop_modalities(
    present: Mapping[str, Tensor],
    rates: float | Mapping[str, float],
    generator: torch.Generator,
    keep_one: bool = True,
) -> dict[str, Tensor]:
    """Drop each present ``(sample, modality)`` entry with probability ``rate``.

    The one meaning of a missing *rate* in modalab: every entry that is present is flipped to
    absent independently with its modality's probability; then, with ``keep_one``, a sample
    left with no modality although it had one gets back one of its originally present
    modalities, chosen uniformly. With ``M`` modalities all present at equal rate ``r`` a given
    modality therefore ends absent with probability ``r - r**M / M`` (with per-modality rates
    ``r_m``: ``r_m - prod(r) / M``). Entries absent in ``present`` stay absent. (Modality
    dropout: Neverova et al., "ModDrop: Adaptive Multi-modal Gesture Recognition", IEEE TPAMI
    2016.)

    Draws, for reproducibility: one uniform ``[B, T]`` tensor over the ``T`` modalities that
    have a rate (in the order of ``present``), then, with ``keep_one``, one ``[B, T]`` tensor of
    scores whose argmax over a sample's originally present modalities is the one restored.
    Nothing is drawn when every rate is 0, nor with ``keep_one`` and a single modality.

    Args:
        present: Modality → ``[B]`` bool masks.
        rates: One drop probability in ``[0, 1]`` for every modality, or modality → its
            probability (modalities not named are never dropped, but count as kept).
        generator: The random state (on the masks' device).
        keep_one: Restore one modality of a sample that would be left with none.

    Returns:
        New masks (the inputs are not modified), keyed and ordered as ``present``.

    Raises:
        ValueError: For a rate outside ``[0, 1]`` or one naming an unknown modality.

    Example:
        >>> p = {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
        >>> out = drop_modalities(p, 1.0, torch.Generator().manual_seed(0))
        >>> (out["a"] ^ out["b"]).all().item()  # everything dropped, one restored per row
        True
        >>> drop_modalities(p, {"b": 1.0}, torch.Generator(), keep_one=False)["b"].any().item()
        False
    """
    names = list(present)
    if isinstance(rates, Mapping):
        unknown = sorted(set(rates) - set(names))
        if unknown:
            raise ValueError(f"drop rates name modalities {unknown}; the masks have {names}.")
        rate_of = {m: float(rates[m]) for m in names if m in rates}
    else:
        rate_of = dict.fromkeys(names, float(rates))
    for name, rate in rate_of.items():
        if not 0 <= rate <= 1:
            raise ValueError(f"drop rate {rate} of modality {name!r} must lie in [0, 1].")
    targets = list(rate_of)
    if not any(rate_of.values()) or (keep_one and len(names) < 2):
        return {m: present[m].clone() for m in names}
    original = torch.stack([present[m] for m in targets], dim=1)  # [B, T]
    draws = torch.rand(original.shape, generator=generator, device=original.device)
    probability = torch.tensor([rate_of[m] for m in targets], dtype=draws.dtype).to(draws.device)
    kept = original & (draws >= probability)
    out = {m: present[m].clone() for m in names}
    out.update({m: kept[:, j] for j, m in enumerate(targets)})
    if keep_one:
        left = torch.stack(list(out.values()), dim=1).any(dim=1)
        empty = ~left & original.any(dim=1)
        # Restore one originally present modality uniformly: argmax of random scores over
        # them. A row left empty had all its present modalities among the targets.
        scores = torch.rand(original.shape, generator=generator, device=original.device)
        restore = scores.masked_fill(~original, -1.0).argmax(dim=1)
        for j, m in enumerate(targets):
            out[m] = out[m] | (empty & (restore == j))
    return out
