"""Training to convergence: early stopping, the best checkpoint, and why training stopped.

The runner trains with callbacks built here: Lightning's ``ModelCheckpoint`` twice — one keeps
the best checkpoint by the monitored validation metric (``best-epochNNN.ckpt``), one the last
epoch's (``last.ckpt``, for ``resume=true``) — and Lightning's ``EarlyStopping``
(``trainer.early_stopping.*``). After
training, :func:`select_checkpoint` loads the checkpoint to evaluate (``eval.checkpoint=best``
by default, ``last`` on request) and :func:`training_summary` says which epoch it is, the best
monitored value and why training stopped; the runner writes it to ``metrics.json`` under
``"training"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.callbacks.early_stopping import EarlyStoppingReason

from modalab.experiments.checkpoint import load_checkpoint
from modalab.experiments.config import ConfigError
from modalab.experiments.rundir import CHECKPOINTS_DIR
from modalab.schedules import EarlyStoppingConfig, LRSchedule

__all__ = [
    "CHECKPOINT_CHOICES",
    "BestCheckpoint",
    "EarlyStoppingConfig",
    "MonitorCheck",
    "ResumableEarlyStopping",
    "TrainingOptions",
    "select_checkpoint",
    "split_trainer_config",
    "training_callbacks",
    "training_summary",
]

#: Name of the best checkpoint (the epoch from 0, as in ``logs/metrics.csv``).
BEST_FILENAME = "best-epoch{epoch:03d}"
#: Name of the checkpoint of the last epoch (``resume=true`` continues from it).
LAST_NAME = "last"
#: Values of ``eval.checkpoint``.
CHECKPOINT_CHOICES = ("best", "last")


@dataclass
class TrainingOptions:
    """The trainer keys that are modalab's, not Lightning's (split off by the runner)."""

    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    lr_schedule: LRSchedule = field(default_factory=LRSchedule)
    threads: int = 0
    allocator: str = "reuse"
    share_training: bool = True


def split_trainer_config(trainer_cfg: Mapping[str, Any]) -> tuple[dict[str, Any], TrainingOptions]:
    """Separate ``trainer.*`` into the Lightning Trainer's arguments and :class:`TrainingOptions`.

    Args:
        trainer_cfg: The resolved ``trainer`` group (without ``batch_size``).

    Returns:
        The Trainer's keyword arguments and modalab's options.
    """
    kwargs = dict(trainer_cfg)
    options = TrainingOptions(
        early_stopping=EarlyStoppingConfig(**dict(kwargs.pop("early_stopping", None) or {})),
        lr_schedule=LRSchedule(**dict(kwargs.pop("lr_schedule", None) or {})),
        threads=int(kwargs.pop("threads", 0)),
        allocator=str(kwargs.pop("allocator", "reuse")),
        share_training=bool(kwargs.pop("share_training", True)),
    )
    return kwargs, options


class _FromSelectionStart(Callback):
    """Mixin: the callback sees validations from the method's first selectable epoch on.

    That epoch is the method's ``selection_start_epoch`` (0 by default).
    """

    @staticmethod
    def _counts(trainer: L.Trainer, pl_module: L.LightningModule) -> bool:
        return int(trainer.current_epoch) >= int(getattr(pl_module, "selection_start_epoch", 0))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Pass this validation on, from the method's first selectable epoch."""
        if self._counts(trainer, pl_module):
            super().on_validation_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """As :meth:`on_validation_end`, when Lightning checks at the end of training epochs."""
        if self._counts(trainer, pl_module):
            super().on_train_epoch_end(trainer, pl_module)


class BestCheckpoint(_FromSelectionStart, ModelCheckpoint):
    """Lightning's monitored ModelCheckpoint, blind to a method's early phase.

    Epochs before the method's ``selection_start_epoch`` (a teacher phase, whose validation
    loss is another quantity) are neither saved as best nor compared. Its state (the best
    value and path) is saved under ModelCheckpoint's key, so that ``resume=true`` restores it
    from checkpoints written before this class existed, and they from it.
    """

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's key for the same settings (Lightning prefixes the class name)."""
        return super().state_key.replace(type(self).__qualname__, "ModelCheckpoint", 1)


class ResumableEarlyStopping(_FromSelectionStart, EarlyStopping):
    """Lightning's EarlyStopping that also stops a resumed run whose patience ran out.

    Lightning restores the callback's state from ``last.ckpt`` but not the Trainer's
    ``should_stop``: a run killed after early stopping fired would train one more epoch when
    resumed. Here it stops at once, as the uninterrupted run did. Like
    :class:`BestCheckpoint`, it ignores epochs before the method's ``selection_start_epoch``:
    patience and the best value start with the first selectable epoch.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Stop before the first epoch if the restored state says training had stopped."""
        if self.stopping_reason != EarlyStoppingReason.NOT_STOPPED:
            trainer.should_stop = True


class MonitorCheck(Callback):
    """Fail with a :class:`ConfigError` listing the logged metrics if a monitor is not one.

    Runs before the checkpoint and early-stopping callbacks, at the first validation, so that
    a typo in ``trainer.early_stopping.monitor`` (or ``trainer.lr_schedule.monitor``) is
    reported in modalab's words, before any checkpoint is written.

    Args:
        monitors: Config key → the metric it names.
    """

    def __init__(self, monitors: Mapping[str, str]) -> None:
        self.monitors = dict(monitors)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Check that the monitored metrics were logged."""
        if trainer.sanity_checking:
            return
        for key, monitor in self.monitors.items():
            if monitor in trainer.callback_metrics:
                continue
            logged = ", ".join(sorted(k for k in trainer.callback_metrics if k.startswith("val")))
            raise ConfigError(
                f"{key}={monitor!r} is not logged by method {type(pl_module).__name__}; its "
                f"validation metrics are: {logged or 'none'}. Choose one of them (and its "
                "mode=min|max)."
            )


def training_callbacks(options: TrainingOptions, checkpoints: Path) -> list[Callback]:
    """The monitor check, the best and the last checkpoint, and early stopping when enabled."""
    stop = options.early_stopping
    monitors = {"trainer.early_stopping.monitor": stop.monitor}
    if options.lr_schedule.name == "plateau":
        monitors["trainer.lr_schedule.monitor"] = options.lr_schedule.monitor
    # Two savers: Lightning (2.6) writes a monitored saver's last.ckpt only at epochs whose
    # top-k checkpoint it also wrote, which would leave resume=true at the best epoch.
    callbacks: list[Callback] = [
        MonitorCheck(monitors),
        BestCheckpoint(
            dirpath=str(checkpoints),
            filename=BEST_FILENAME,
            auto_insert_metric_name=False,
            monitor=stop.monitor,
            mode=stop.mode,
            save_top_k=1,
        ),
        ModelCheckpoint(dirpath=str(checkpoints), filename=LAST_NAME, save_top_k=1),
    ]
    if stop.enabled:
        callbacks.append(
            ResumableEarlyStopping(
                monitor=stop.monitor,
                mode=stop.mode,
                patience=stop.patience,
                min_delta=stop.min_delta,
            )
        )
    return callbacks


def _best_saver(trainer: L.Trainer) -> ModelCheckpoint | None:
    savers = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    return next((c for c in savers if c.monitor is not None), None)


def _stopper(trainer: L.Trainer) -> EarlyStopping | None:
    stoppers = [c for c in trainer.early_stopping_callbacks if isinstance(c, EarlyStopping)]
    return stoppers[0] if stoppers else None


def select_checkpoint(
    trainer: L.Trainer, module: L.LightningModule, which: str = "best"
) -> dict[str, Any]:
    """Load the weights to evaluate into ``module``: the best checkpoint or the last weights.

    Args:
        trainer: The Trainer after ``fit``.
        module: The trained module (it holds the last weights).
        which: ``best`` (the checkpoint with the best monitored value) or ``last``.

    Returns:
        ``evaluated_checkpoint`` (``best``/``last``), ``evaluated_epoch`` (counted from 0 as
        in ``logs/metrics.csv``) and ``evaluated_path`` (the checkpoint file, relative to the
        run directory).

    Raises:
        ValueError: For an unknown ``which``.
    """
    if which not in CHECKPOINT_CHOICES:
        raise ValueError(f"eval.checkpoint={which!r} is invalid: expected best | last.")
    saver = _best_saver(trainer)
    if which == "best" and saver is not None and saver.best_model_path:
        path = Path(saver.best_model_path)
        checkpoint = load_checkpoint(path)
        module.load_state_dict(checkpoint["state_dict"])
        name, epoch = path.name, int(checkpoint["epoch"])
    else:  # the module holds the weights of the last epoch trained
        which, name = "last", f"{LAST_NAME}.ckpt"
        epoch = max(0, int(trainer.current_epoch) - 1)
    return {
        "evaluated_checkpoint": which,
        "evaluated_epoch": epoch,
        "evaluated_path": f"{CHECKPOINTS_DIR}/{name}",
    }


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def training_summary(trainer: L.Trainer, options: TrainingOptions) -> dict[str, Any]:
    """Why and when training stopped, and the best monitored value (for ``metrics.json``).

    Returns:
        ``epochs_trained``, ``max_epochs``, ``stop_reason`` (a sentence), ``stopped_early``,
        ``monitor``, ``mode``, ``best_epoch`` (from 0), ``best_value``, ``early_stopping``
        (its settings or None), ``lr_schedule`` and ``selection_start_epoch`` (the first
        epoch the monitor counted; > 0 after a teacher phase).
    """
    stop = options.early_stopping
    saver, stopper = _best_saver(trainer), _stopper(trainer)
    epochs = int(trainer.current_epoch)
    max_epochs = int(trainer.max_epochs or 0)
    stopped_early = (
        stopper is not None and stopper.stopping_reason != EarlyStoppingReason.NOT_STOPPED
    )
    if stopped_early and stopper is not None:
        if stopper.stopping_reason == EarlyStoppingReason.PATIENCE_EXHAUSTED:
            reason = (
                f"early stopping at epoch {stopper.stopped_epoch}: {stop.monitor} did not improve "
                f"by more than {stop.min_delta} for {stop.patience} validation checks"
            )
        else:
            reason = (
                f"early stopping at epoch {stopper.stopped_epoch}: "
                + str(stopper.stopping_reason_message or stopper.stopping_reason.value).strip()
            )
    elif max_epochs and epochs >= max_epochs:
        reason = f"max_epochs={max_epochs} reached"
    else:
        reason = f"stopped by the Trainer after {epochs} epochs"
    best_epoch = None
    if saver is not None and saver.best_model_path:
        match = re.fullmatch(r"best-epoch(\d+)\.ckpt", Path(saver.best_model_path).name)
        best_epoch = int(match.group(1)) if match else None
    return {
        "epochs_trained": epochs,
        "max_epochs": max_epochs,
        "stop_reason": reason,
        "stopped_early": bool(stopped_early),
        "monitor": stop.monitor,
        "mode": stop.mode,
        "best_epoch": best_epoch,
        "best_value": _number(saver.best_model_score) if saver is not None else None,
        "early_stopping": asdict(stop) if stop.enabled else None,
        "lr_schedule": asdict(options.lr_schedule),
        "selection_start_epoch": int(getattr(trainer.lightning_module, "selection_start_epoch", 0)),
    }
