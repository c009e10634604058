"""Training tricks that recipes compose: modality dropout, OGM-GE, gradient blending weights.

Each is a small function of tensors (or of measured losses) with its own random state; the
recipes in :mod:`modalab.methods` decide when to call them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn

from modalab.data.presence import drop_modalities

__all__ = [
    "gaussian_enhanced_gradients",
    "gradient_blend_weights",
    "modality_dropout",
    "modality_scores",
    "ogm_ge_coefficients",
]


def modality_dropout(
    present: Mapping[str, Tensor], rate: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """Drop each observed modality of each sample with probability ``rate``, keeping one.

    Modality dropout (Neverova et al., "ModDrop: Adaptive Multi-modal Gesture Recognition",
    IEEE TPAMI 2016) is :func:`~modalab.data.presence.drop_modalities` with one rate and
    ``keep_one=True``: every present entry is flipped to absent with probability ``rate``, and
    a sample left with no modality gets back one of its originally present modalities,
    chosen uniformly. With ``M`` modalities all present, a given modality therefore ends
    absent with probability ``rate - rate^M / M``. Modalities absent in ``present`` stay
    absent.

    Args:
        present: Modality → ``[B]`` bool.
        rate: Drop probability in ``[0, 1]``.
        generator: The random state (on the masks' device).

    Returns:
        New masks; the inputs are not modified.

    Example:
        >>> p = {"a": torch.ones(4, dtype=torch.bool), "b": torch.ones(4, dtype=torch.bool)}
        >>> out = modality_dropout(p, 1.0, torch.Generator().manual_seed(0))
        >>> (out["a"] ^ out["b"]).all().item()  # everything dropped, one restored per row
        True
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"modality dropout rate={rate} must lie in [0, 1].")
    return drop_modalities(present, rate, generator, keep_one=True)


def modality_scores(
    logits: Mapping[str, Tensor], label: Tensor, mask: Tensor | None = None
) -> dict[str, Tensor]:
    """OGM-GE's per-modality score: the summed softmax probability of the true class.

    ``s_m = sum_i softmax(logits_m_i)[y_i]`` over the selected rows (Peng et al., CVPR 2022,
    eq. 8), where ``logits_m`` is modality ``m``'s additive contribution to the fused logits.

    Args:
        logits: Modality → ``[B, C]`` unimodal contributions.
        label: ``[B]``.
        mask: ``[B]`` bool rows to count (observed labels); default all.

    Returns:
        Modality → scalar score (detached).

    Example:
        >>> s = modality_scores({"a": torch.zeros(2, 2)}, torch.tensor([0, 1]))
        >>> s["a"].item()
        1.0
    """
    out = {}
    for name, value in logits.items():
        p = torch.softmax(value.detach(), dim=-1).gather(1, label.view(-1, 1)).squeeze(1)
        out[name] = p[mask].sum() if mask is not None else p.sum()
    return out


def ogm_ge_coefficients(
    scores: Mapping[str, Tensor | float], alpha: float, ratio_offset: float = 1.0
) -> dict[str, float]:
    """On-the-fly gradient modulation coefficients (Peng, Wei, Deng, Wang & Hu, CVPR 2022).

    For two modalities with scores ``s_a, s_v`` the discrepancy ratio of ``a`` is
    ``rho_a = s_a / s_v``; the dominant modality (``rho > 1``) gets
    ``k = 1 - tanh(alpha · (rho - 1))`` and the other ``k = 1`` (the paper's eq. 9-10). With more
    than two modalities, ``rho_m = s_m / mean_{j != m} s_j`` and every ``m`` with ``rho_m > 1``
    is damped likewise (for two modalities this is the paper's rule exactly).

    ``ratio_offset`` is the ``1`` subtracted from ``rho``: the reference implementation
    (GeWu-Lab/OGM-GE_CVPR2022 ``main.py``, ``train_epoch``, quoting its eq. 10) computes
    ``1 - tanh(alpha · relu(rho))`` for ``rho > 1``, i.e. ``ratio_offset=0``, which damps
    the dominant modality by at least ``1 - tanh(alpha)`` as soon as it leads; the default
    ``1`` makes the coefficient continuous at ``rho = 1``.

    Args:
        scores: Modality → score (:func:`modality_scores`).
        alpha: Modulation strength ``alpha > 0``.
        ratio_offset: Subtracted from the ratio before ``tanh`` (``0``: the reference code).

    Returns:
        Modality → coefficient in ``(0, 1]``.

    Example:
        >>> k = ogm_ge_coefficients({"audio": 3.0, "visual": 1.0}, alpha=0.5)
        >>> round(k["audio"], 4), k["visual"]  # 1 - tanh(0.5 * (3 - 1))
        (0.2384, 1.0)
        >>> round(ogm_ge_coefficients({"audio": 3.0, "visual": 1.0}, 0.5, 0.0)["audio"], 4)
        0.0949
    """
    if alpha <= 0:
        raise ValueError(f"OGM-GE alpha={alpha} must be positive.")
    if len(scores) < 2:
        raise ValueError(f"OGM-GE needs at least two modalities, got {list(scores)}.")
    values = {k: float(v) for k, v in scores.items()}
    out = {}
    for name, value in values.items():
        others = [v for k, v in values.items() if k != name]
        reference = sum(others) / len(others)
        ratio = value / reference if reference > 0 else math.inf
        damped = ratio > 1.0
        out[name] = 1.0 - math.tanh(alpha * max(ratio - ratio_offset, 0.0)) if damped else 1.0
    return out


def gaussian_enhanced_gradients(
    parameters: Iterable[nn.Parameter],
    coefficient: float,
    generator: torch.Generator | None,
    enhance: bool = True,
) -> None:
    """Scale gradients in place by ``coefficient`` and add OGM-GE's Gaussian enhancement.

    ``g ← k · g + N(0, std(g)^2)`` (Peng et al., CVPR 2022, section 3.3: the noise restores
    the generalisation that a smaller gradient scale loses). With ``enhance=False`` only the
    scaling (OGM without GE). Parameters without a gradient are skipped.

    Args:
        parameters: The parameters of one modality's encoder.
        coefficient: ``k`` from :func:`ogm_ge_coefficients`.
        generator: Random state of the noise (a CPU generator; noise is moved to the device).
        enhance: Add the Gaussian noise.

    Example:
        >>> w = nn.Parameter(torch.ones(3))
        >>> w.grad = torch.tensor([1.0, 2.0, 3.0])
        >>> gaussian_enhanced_gradients([w], 0.5, None, enhance=False)
        >>> w.grad.tolist()
        [0.5, 1.0, 1.5]
    """
    for p in parameters:
        if p.grad is None:
            continue
        std = float(p.grad.std()) if p.grad.numel() > 1 else 0.0
        p.grad.mul_(coefficient)
        if enhance and std > 0:
            noise = torch.randn(p.grad.shape, generator=generator, dtype=p.grad.dtype)
            p.grad.add_(noise.to(p.grad.device) * (std + 1e-8))


def gradient_blend_weights(
    train_before: Mapping[str, float],
    train_after: Mapping[str, float],
    val_before: Mapping[str, float],
    val_after: Mapping[str, float],
    eps: float = 1e-8,
) -> dict[str, float]:
    """Gradient-blending weights from measured losses (Wang, Tran & Feiszli, CVPR 2020).

    For each head ``k`` (unimodal heads and the fused head), between two checkpoints:
    generalisation ``G_k = val_before - val_after`` and overfitting change
    ``O_k = (val_after - train_after) - (val_before - train_before)``; the optimal blend is
    ``w_k ∝ G_k / O_k^2`` (their eq. 8), normalised to sum to one. A head whose validation loss
    did not improve (``G_k <= 0``) gets weight 0; if none improved, weights are uniform.

    Args:
        train_before: Head → training loss at the earlier checkpoint.
        train_after: Head → training loss at the later checkpoint.
        val_before: Head → validation loss at the earlier checkpoint.
        val_after: Head → validation loss at the later checkpoint.
        eps: Floor of ``O_k^2``.

    Returns:
        Head → weight, summing to 1.

    Example:
        >>> w = gradient_blend_weights({"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.2},
        ...                            {"a": 1.0, "b": 1.0}, {"a": 0.6, "b": 0.9})
        >>> round(w["a"], 4), round(w["b"], 4)  # G/O^2: 0.4/0.1^2 = 40 and 0.1/0.7^2
        (0.9949, 0.0051)
    """
    names = list(train_before)
    for table in (train_after, val_before, val_after):
        if set(table) != set(names):
            raise ValueError(
                f"gradient_blend_weights: every loss table needs the heads {sorted(names)}, "
                f"got {sorted(table)}."
            )
    raw = {}
    for k in names:
        gain = val_before[k] - val_after[k]
        overfit = (val_after[k] - train_after[k]) - (val_before[k] - train_before[k])
        raw[k] = max(gain, 0.0) / max(overfit**2, eps)
    total = sum(raw.values())
    if total <= 0 or not math.isfinite(total):
        return {k: 1.0 / len(names) for k in names}
    return {k: v / total for k, v in raw.items()}
