"""When the learning rate moves and when training stops: plain settings and closed forms.

These dataclasses are the typed ``trainer.lr_schedule.*`` and ``trainer.early_stopping.*``
configs; :func:`modalab.methods.common.adamw_with_schedule` builds the optimizer schedule and
:mod:`modalab.experiments.training` the early stopping from them. This module imports neither
torch nor Lightning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["EarlyStoppingConfig", "LRSchedule", "lr_factor"]

_SCHEDULES = ("cosine", "constant", "plateau")


@dataclass
class LRSchedule:
    """How the learning rate moves during training (``trainer.lr_schedule.*``).

    Attributes:
        name: ``cosine``: linear warm-up, then a per-step cosine decay to
            ``min_lr_ratio * lr`` at the last step of ``trainer.max_epochs`` (SGDR without
            restarts, Loshchilov & Hutter, ICLR 2017; warm-up as in Goyal et al., 2017);
            ``constant``: warm-up, then the peak rate; ``plateau``: the rate is multiplied by
            ``plateau_factor`` after ``plateau_patience`` validation checks without improvement
            of ``monitor`` (PyTorch's ``ReduceLROnPlateau``).
        warmup_epochs: Length of the linear warm-up in epochs (may be fractional; 0: none).
            Not used by ``plateau``.
        min_lr_ratio: Floor of the cosine decay as a fraction of the peak rate.
        plateau_factor: Factor of each ``plateau`` reduction, in (0, 1).
        plateau_patience: Validation checks without improvement before a reduction.
        monitor: The logged metric ``plateau`` watches.
        mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better.
    """

    name: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    monitor: str = "val/loss"
    mode: str = "min"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        _check("name", self.name, self.name in _SCHEDULES, " | ".join(_SCHEDULES))
        _check("warmup_epochs", self.warmup_epochs, self.warmup_epochs >= 0, "a number >= 0")
        _check("min_lr_ratio", self.min_lr_ratio, 0 <= self.min_lr_ratio <= 1, "a number in [0, 1]")
        _check(
            "plateau_factor", self.plateau_factor, 0 < self.plateau_factor < 1, "a number in (0, 1)"
        )
        _check(
            "plateau_patience", self.plateau_patience, self.plateau_patience >= 0, "an integer >= 0"
        )
        _check("mode", self.mode, self.mode in ("min", "max"), "min | max")


def _check(key: str, value: object, ok: bool, valid: str, group: str = "lr_schedule") -> None:
    if not ok:
        raise ValueError(f"{group}.{key}={value!r} is invalid: expected {valid}.")


def lr_factor(
    step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float = 0.0, decay: bool = True
) -> float:
    """The learning rate at optimizer step ``step`` as a fraction of the peak rate.

    Linear warm-up ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` steps, then
    (with ``decay``) ``m + (1 - m) * (1 + cos(pi * p)) / 2`` with ``p`` the fraction of the
    remaining ``total_steps - warmup_steps`` steps done (clipped to 1) and ``m = min_lr_ratio``;
    without ``decay``, 1.

    Args:
        step: Optimizer steps taken before this one (0 for the first).
        total_steps: Steps of the whole training budget.
        warmup_steps: Steps of the warm-up (0: none).
        min_lr_ratio: Floor of the decay.
        decay: Cosine decay after the warm-up (else constant).

    Returns:
        The multiplier of the peak learning rate.

    Example:
        >>> lr_factor(0, 100, 10), lr_factor(9, 100, 10), lr_factor(10, 100, 10)
        (0.1, 1.0, 1.0)
        >>> round(lr_factor(55, 100, 10), 6), lr_factor(100, 100, 10)
        (0.5, 0.0)
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if not decay:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class EarlyStoppingConfig:
    """``trainer.early_stopping.*``: stop when the validation metric stops improving.

    ``monitor`` and ``mode`` also choose the best checkpoint, with or without early stopping.

    Attributes:
        enabled: Stop early (else train ``trainer.max_epochs`` epochs).
        monitor: A metric the method logs at validation, e.g. ``val/loss``.
        mode: ``min`` or ``max``: whether a lower or a higher ``monitor`` is better.
        patience: Validation checks without an improvement larger than ``min_delta`` after
            which training stops.
        min_delta: The smallest change of ``monitor`` that counts as an improvement.
    """

    enabled: bool = True
    monitor: str = "val/loss"
    mode: str = "min"
    patience: int = 4
    min_delta: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        group = "early_stopping"
        _check("monitor", self.monitor, bool(self.monitor), "a logged metric, e.g. val/loss", group)
        _check("mode", self.mode, self.mode in ("min", "max"), "min | max", group)
        _check("patience", self.patience, self.patience >= 1, "an integer >= 1", group)
        _check("min_delta", self.min_delta, self.min_delta >= 0, "a number >= 0", group)
