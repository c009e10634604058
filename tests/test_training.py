"""Training to convergence: schedules, early stopping, the evaluated checkpoint, threads."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from modalab.experiments.allocator import _glibc
from modalab.experiments.checkpoint import load_checkpoint
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.threads import auto_threads, choose_threads
from modalab.experiments.training import (
    TrainingOptions,
    select_checkpoint,
    training_callbacks,
    training_summary,
)
from modalab.methods.common import adamw_with_schedule
from modalab.schedules import EarlyStoppingConfig, LRSchedule, lr_factor


class Scripted(L.LightningModule):
    """A regression whose logged ``val/loss`` follows a given curve, epoch by epoch."""

    def __init__(self, curve: list[float], schedule: LRSchedule, lr: float = 0.1) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.curve = curve
        self.lr = lr
        self.lr_schedule = schedule
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.step_lrs: list[float] = []
        self.epoch_lrs: list[float] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return ((self.layer(x) - y) ** 2).mean()

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.step_lrs.append(self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]

    def on_train_epoch_start(self) -> None:
        self.epoch_lrs.append(self.optimizers().param_groups[0]["lr"])  # type: ignore[union-attr]

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", torch.tensor(self.curve[self.current_epoch]))

    def on_validation_epoch_end(self) -> None:
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        self.snapshots[self.current_epoch] = state

    def configure_optimizers(self) -> Any:
        return adamw_with_schedule(self, self.parameters(), self.lr, 0.0)


def _loader(n: int = 16, batch: int = 4) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=generator)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=batch)


def _trainer(max_epochs: int, callbacks: list[Any]) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )


def _expected_stop(curve: list[float], patience: int, min_delta: float) -> tuple[int, int]:
    """(best epoch, last epoch trained) of patience-based early stopping, by hand."""
    best, best_epoch, wait = math.inf, 0, 0
    for epoch, value in enumerate(curve):
        if value < best - min_delta:
            best, best_epoch, wait = value, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, len(curve) - 1


CURVE = [5.0, 4.0, 3.0, 3.5, 2.5, 2.6, 2.45, 2.7, 2.8, 2.9, 3.0, 3.1, 3.2, 3.3]


@pytest.mark.parametrize(("patience", "min_delta"), [(3, 0.0), (3, 0.1), (2, 0.0)])
def test_early_stopping_stops_after_patience_and_evaluates_the_best_epoch(
    tmp_path: Path, patience: int, min_delta: float
) -> None:
    stop = EarlyStoppingConfig(patience=patience, min_delta=min_delta)
    options = TrainingOptions(early_stopping=stop, lr_schedule=LRSchedule(name="constant"))
    module = Scripted(CURVE, options.lr_schedule)
    trainer = _trainer(len(CURVE), training_callbacks(options, tmp_path / "checkpoints"))
    trainer.fit(module, _loader(), _loader())
    # With min_delta the best checkpoint is still the lowest value (Lightning's checkpointing
    # has no min_delta), while patience counts only improvements larger than min_delta.
    _, last_epoch = _expected_stop(CURVE, patience, min_delta)
    best_epoch = min(range(last_epoch + 1), key=lambda e: CURVE[e])
    summary = training_summary(trainer, options)
    assert summary["epochs_trained"] == last_epoch + 1 < len(CURVE)
    assert summary["stopped_early"] is True
    assert summary["best_epoch"] == best_epoch
    assert summary["best_value"] == pytest.approx(CURVE[best_epoch])
    assert summary["stop_reason"] == (
        f"early stopping at epoch {last_epoch}: val/loss did not improve by more than "
        f"{min_delta} for {patience} validation checks"
    )
    chosen = select_checkpoint(trainer, module, "best")
    assert chosen["evaluated_epoch"] == best_epoch
    assert chosen["evaluated_path"] == f"checkpoints/best-epoch{best_epoch:03d}.ckpt"
    # The module now holds the best epoch's weights, not the last epoch's.
    for key, value in module.state_dict().items():
        assert torch.equal(value, module.snapshots[best_epoch][key]), key
    assert not torch.equal(module.layer.weight, module.snapshots[last_epoch]["layer.weight"])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == [f"best-epoch{best_epoch:03d}.ckpt", "last.ckpt"]


class Phased(Scripted):
    """A scripted curve whose first ``start`` epochs are another phase (a teacher's)."""

    def __init__(self, curve: list[float], schedule: LRSchedule, start: int) -> None:
        super().__init__(curve, schedule)
        self.start = start

    @property
    def selection_start_epoch(self) -> int:
        return self.start


@pytest.mark.slow  # the fast tier is at its 3-minute budget
def test_epochs_before_the_selection_start_neither_select_nor_stop(tmp_path: Path) -> None:
    # Teacher phase (epochs 0-2) with a low loss of another quantity, then the student's curve:
    # neither the best checkpoint nor patience may count the teacher phase.
    curve = [0.1, 0.05, 0.02, 3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0]
    start, patience = 3, 3
    stop = EarlyStoppingConfig(patience=patience)
    options = TrainingOptions(early_stopping=stop, lr_schedule=LRSchedule(name="constant"))
    module = Phased(curve, options.lr_schedule, start)
    trainer = _trainer(len(curve), training_callbacks(options, tmp_path / "checkpoints"))
    trainer.fit(module, _loader(), _loader())
    best_offset, last_offset = _expected_stop(curve[start:], patience, 0.0)
    summary = training_summary(trainer, options)
    assert summary["best_epoch"] == start + best_offset == 6
    assert summary["epochs_trained"] == start + last_offset + 1 == 10
    assert summary["selection_start_epoch"] == start
    assert select_checkpoint(trainer, module, "best")["evaluated_epoch"] == 6
    for key, value in module.state_dict().items():
        assert torch.equal(value, module.snapshots[6][key]), key
    # Without the phase, the teacher's epoch 2 would be "best" and patience would stop at 5.
    plain = Scripted(curve, options.lr_schedule)
    trainer = _trainer(len(curve), training_callbacks(options, tmp_path / "plain"))
    trainer.fit(plain, _loader(), _loader())
    assert training_summary(trainer, options)["best_epoch"] == 2


def test_without_early_stopping_training_reaches_max_epochs_and_last_is_on_request(
    tmp_path: Path,
) -> None:
    options = TrainingOptions(
        early_stopping=EarlyStoppingConfig(enabled=False), lr_schedule=LRSchedule(name="constant")
    )
    module = Scripted(CURVE[:6], options.lr_schedule)
    trainer = _trainer(6, training_callbacks(options, tmp_path))
    trainer.fit(module, _loader(), _loader())
    summary = training_summary(trainer, options)
    assert summary["stop_reason"] == "max_epochs=6 reached"
    assert summary["stopped_early"] is False and summary["early_stopping"] is None
    assert summary["best_epoch"] == 4  # argmin of CURVE[:6]
    last = select_checkpoint(trainer, module, "last")
    assert last == {
        "evaluated_checkpoint": "last",
        "evaluated_epoch": 5,
        "evaluated_path": "checkpoints/last.ckpt",
    }
    for key, value in load_checkpoint(tmp_path / "last.ckpt")["state_dict"].items():
        assert torch.equal(module.state_dict()[key], value)
    with pytest.raises(ValueError, match=r"eval\.checkpoint='middle'"):
        select_checkpoint(trainer, module, "middle")


def test_a_monitor_the_method_does_not_log_is_a_config_error(tmp_path: Path) -> None:
    options = TrainingOptions(early_stopping=EarlyStoppingConfig(monitor="val/acc"))
    trainer = _trainer(3, training_callbacks(options, tmp_path))
    with pytest.raises(
        ConfigError, match=r"early_stopping.monitor='val/acc' is not logged.*are: val/loss\."
    ):
        trainer.fit(Scripted(CURVE, LRSchedule()), _loader(), _loader())
    assert list(tmp_path.iterdir()) == []  # no checkpoint written
    plateau = LRSchedule(name="plateau", monitor="val/los")
    options = TrainingOptions(EarlyStoppingConfig(enabled=False), plateau)
    trainer = _trainer(3, training_callbacks(options, tmp_path))
    with pytest.raises(ConfigError, match=r"trainer.lr_schedule.monitor='val/los' is not logged"):
        trainer.fit(Scripted(CURVE, plateau), _loader(), _loader())


def test_a_resumed_run_whose_patience_ran_out_trains_no_further(tmp_path: Path) -> None:
    options = TrainingOptions(
        early_stopping=EarlyStoppingConfig(patience=2), lr_schedule=LRSchedule(name="constant")
    )
    module = Scripted(CURVE, options.lr_schedule)
    first = _trainer(len(CURVE), training_callbacks(options, tmp_path))
    first.fit(module, _loader(), _loader())
    steps = first.global_step
    resumed_module = Scripted(CURVE, options.lr_schedule)
    resumed = _trainer(len(CURVE), training_callbacks(options, tmp_path))
    resumed.fit(resumed_module, _loader(), _loader(), ckpt_path=str(tmp_path / "last.ckpt"))
    assert resumed.global_step == steps
    assert resumed_module.epoch_lrs == []  # not one more epoch
    assert training_summary(resumed, options)["stop_reason"].startswith(
        f"early stopping at epoch {first.current_epoch - 1}"
    )


def test_a_resumed_run_keeps_its_best_checkpoint(tmp_path: Path) -> None:
    """The best value survives resume=true, also from checkpoints of a plain ModelCheckpoint."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from modalab.experiments.training import BestCheckpoint

    same = {"monitor": "val/loss", "mode": "min"}
    assert BestCheckpoint(**same).state_key == ModelCheckpoint(**same).state_key
    curve = [3.0, 1.0, 2.0, 2.5, 2.2, 2.1]  # best at epoch 1; the resumed epochs are worse
    options = TrainingOptions(
        early_stopping=EarlyStoppingConfig(patience=10), lr_schedule=LRSchedule(name="constant")
    )
    first = _trainer(3, training_callbacks(options, tmp_path))
    first.fit(Scripted(curve, options.lr_schedule), _loader(), _loader())
    resumed = _trainer(len(curve), training_callbacks(options, tmp_path))
    module = Scripted(curve, options.lr_schedule)
    resumed.fit(module, _loader(), _loader(), ckpt_path=str(tmp_path / "last.ckpt"))
    assert training_summary(resumed, options)["best_epoch"] == 1
    assert sorted(p.name for p in tmp_path.glob("best-*")) == ["best-epoch001.ckpt"]


def _cosine_by_hand(step: int, total: int, warmup: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / (total - warmup))
    return floor + (1 - floor) * (1 + math.cos(math.pi * t)) / 2


def test_cosine_with_warmup_follows_its_closed_form_at_every_step(tmp_path: Path) -> None:
    schedule = LRSchedule(name="cosine", warmup_epochs=1.5, min_lr_ratio=0.1)
    options = TrainingOptions(EarlyStoppingConfig(enabled=False), schedule)
    module = Scripted([1.0] * 5, schedule, lr=0.2)
    trainer = _trainer(5, training_callbacks(options, tmp_path))
    trainer.fit(module, _loader(16, 4), _loader())  # 4 steps per epoch, 20 in all
    expected = [0.2 * _cosine_by_hand(s, 20, 6, 0.1) for s in range(20)]
    assert module.step_lrs == pytest.approx(expected, rel=1e-12)
    assert [lr_factor(s, 20, 6, 0.1) for s in range(20)] == pytest.approx(
        [_cosine_by_hand(s, 20, 6, 0.1) for s in range(20)], rel=1e-12
    )


def test_cosine_without_warmup_equals_pytorchs_cosine_annealing() -> None:
    parameter = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.3)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=37)
    for step in range(37):
        assert 0.3 * lr_factor(step, 37, 0) == pytest.approx(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()


def test_constant_schedule_warms_up_then_holds() -> None:
    assert [lr_factor(s, 10, 4, decay=False) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]


def _plateau_by_hand(curve: list[float], lr: float, patience: int) -> list[float]:
    """The rate at the start of each epoch under ReduceLROnPlateau (factor 0.5), by hand."""
    best, bad, expected = math.inf, 0, []
    for value in curve:
        expected.append(lr)
        if value < best * (1 - 1e-4):  # ReduceLROnPlateau's default relative threshold
            best, bad = value, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * 0.5, 0
    return expected


def test_plateau_halves_the_rate_after_patience_checks_without_improvement(
    tmp_path: Path,
) -> None:
    curve = [5.0, 4.0, 4.5, 4.6, 3.0, 3.1, 3.2, 3.3]
    schedule = LRSchedule(name="plateau", plateau_factor=0.5, plateau_patience=1)
    options = TrainingOptions(EarlyStoppingConfig(enabled=False), schedule)
    module = Scripted(curve, schedule, lr=0.2)
    trainer = _trainer(len(curve), training_callbacks(options, tmp_path))
    trainer.fit(module, _loader(), _loader())
    # By hand: a reduction after more than `patience` bad epochs in a row, then the count restarts.
    expected = _plateau_by_hand(curve, 0.2, patience=1)
    assert module.epoch_lrs == pytest.approx(expected)
    assert min(expected) < 0.2  # the curve does trigger reductions


@pytest.mark.slow  # the fast tier is at its 3-minute budget
def test_plateau_counts_no_epoch_before_the_selection_start(tmp_path: Path) -> None:
    # A teacher phase (epochs 0-2) logs a low loss of another quantity; the student's
    # improving curve after it must not read as a plateau (it would halve the rate at once).
    curve = [0.1, 0.05, 0.02, 3.0, 2.0, 1.5, 1.6, 1.7, 1.2]
    schedule = LRSchedule(name="plateau", plateau_factor=0.5, plateau_patience=1)
    options = TrainingOptions(EarlyStoppingConfig(enabled=False), schedule)
    module = Phased(curve, schedule, start=3)
    module.lr = 0.2
    trainer = _trainer(len(curve), training_callbacks(options, tmp_path / "phased"))
    trainer.fit(module, _loader(), _loader())
    student = _plateau_by_hand(curve[3:], 0.2, patience=1)
    assert module.epoch_lrs == pytest.approx([0.2, 0.2, 0.2, *student])
    assert student[:4] == [0.2] * 4 and min(student) == 0.1  # one reduction, after epoch 7
    # Counting the teacher phase, the rate would be halved from the student's second epoch.
    plain = Scripted(curve, schedule, lr=0.2)
    trainer = _trainer(len(curve), training_callbacks(options, tmp_path / "plain"))
    trainer.fit(plain, _loader(), _loader())
    assert plain.epoch_lrs == pytest.approx(_plateau_by_hand(curve, 0.2, patience=1))
    assert plain.epoch_lrs[5] < 0.2


def test_bad_training_settings_are_config_errors() -> None:
    for override, message in [
        ("trainer.early_stopping.patience=0", "trainer.early_stopping.patience=0 is invalid"),
        ("trainer.early_stopping.mode=up", "trainer.early_stopping.mode='up' is invalid"),
        ("trainer.lr_schedule.name=step", "trainer.lr_schedule.name='step' is invalid"),
        ("trainer.lr_schedule.warmup_epochs=-1", "warmup_epochs=-1.0 is invalid"),
        ("trainer.threads=-2", "trainer.threads=-2 is invalid"),
        ("eval.checkpoint=middle", "eval.checkpoint='middle' is invalid"),
    ]:
        with pytest.raises(ConfigError, match=message):
            compose_config([override])


@pytest.mark.parametrize(
    ("cpus", "load", "processes", "expected"),
    [
        (2, 0.0, 1, 2),  # idle: every core
        (2, 0.49, 1, 2),  # 1.51 idle cores round to 2
        (2, 0.51, 1, 1),  # 1.49 round to 1
        (2, 1.7, 1, 1),  # 0.3 idle: still one thread
        (2, 9.0, 1, 1),  # overloaded: one thread
        (16, 3.2, 1, 13),
        (16, 0.0, 4, 4),  # four processes share 16 idle cores
        (3, 0.0, 2, 1),
    ],
)
def test_auto_threads_uses_the_idle_cores(
    cpus: int, load: float, processes: int, expected: int
) -> None:
    assert auto_threads(cpus, load, processes) == expected


@pytest.mark.parametrize(
    ("cpus", "load", "processes", "expected"),
    [
        (2, 0.0, 1, 2),
        (2, 2.06, 1, 2),  # the benchmark's own load: sleeping waiters make two threads cheap
        (2, 2.99, 1, 2),
        (2, 3.0, 1, 1),  # cpus + 1: back to the idle cores
        (2, 9.0, 1, 1),
        (16, 10.0, 4, 4),
        (16, 17.5, 1, 1),
    ],
)
def test_passive_wait_policy_uses_every_core_below_cpus_plus_one(
    cpus: int, load: float, processes: int, expected: int
) -> None:
    assert auto_threads(cpus, load, processes, passive=True) == expected


def test_thread_choice_prefers_the_option_then_the_environment_then_the_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "getloadavg", lambda: (5.0, 5.0, 5.0))
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads(2).threads == 2 and choose_threads(2).source == "trainer.threads"
    assert (choose_threads(0).threads, choose_threads(0).source) == (3, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    auto = choose_threads(0)
    assert (auto.threads, auto.source, auto.load_average) == (1, "auto", 5.0)
    with pytest.raises(ValueError, match=r"trainer\.threads=-1"):
        choose_threads(-1)


def test_importing_modalab_before_torch_sets_a_short_spin_and_keeps_a_users_policy() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = (
        "import os, modalab, torch; from modalab.experiments.threads import choose_threads; "
        "print(os.environ.get('GOMP_SPINCOUNT', '-'), os.environ.get('OMP_WAIT_POLICY', '-'), "
        "repr(choose_threads(1).wait_policy))"
    )

    def show(**extra: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().split(maxsplit=2)

    assert show() == ["10000", "-", "'spin 10000'"]
    assert show(OMP_WAIT_POLICY="PASSIVE") == ["-", "PASSIVE", "'PASSIVE'"]  # kept, no spin set
    assert show(GOMP_SPINCOUNT="500") == ["500", "-", "'spin 500'"]
    late = "import torch, modalab.experiments.threads as t; print(t.choose_threads(1).wait_policy)"
    out = subprocess.run([sys.executable, "-c", late], env=env, capture_output=True, text=True)
    assert "not in effect" in out.stdout, out.stderr


def test_every_core_is_used_below_cpus_plus_one_only_under_a_bounded_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import modalab.experiments.threads as threads

    monkeypatch.setattr(os, "getloadavg", lambda: (1.6, 1.6, 1.6))
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for policy, expected in [
        ("spin 10000", 2),  # the default: spins briefly, then sleeps
        ("PASSIVE", 2),
        ("spin 300000", 0),  # OpenMP's own default spin: only the idle cores
        ("", 0),
        ("spin 10000 (set after torch loaded: not in effect)", 0),
    ]:
        monkeypatch.setattr(threads, "_wait_policy", lambda p=policy: p)
        idle = max(1, round(2 - 1.6))  # the idle cores: 0.4 rounds to 0, at least 1
        assert choose_threads(0).threads == (expected or idle), policy


@pytest.mark.slow
@pytest.mark.parametrize("which", ["best", "last"])
def test_a_run_evaluates_the_chosen_checkpoint_and_records_why_it_stopped(
    tmp_path: Path, which: str
) -> None:
    from modalab.experiments.runner import run

    result = run(
        compose_config(
            [
                "method=supervised",
                "data.n_samples=400",
                "model.embed_dim=16",
                "trainer.batch_size=32",
                "trainer.max_epochs=12",
                "trainer.early_stopping.patience=2",
                "trainer.threads=1",
                "eval.l2_grid=[0.01]",
                "eval.retrieval_ks=[1]",
                f"eval.checkpoint={which}",
                f"output_dir={tmp_path}",
                "run_name=r",
            ]
        ),
        quiet=True,
    )
    training = json.loads((result.run_dir / "metrics.json").read_text())["training"]
    assert training == result.training
    curve = pd.read_csv(result.run_dir / "logs" / "metrics.csv").dropna(subset=["val/loss"])
    values = curve.set_index("epoch")["val/loss"]
    assert training["epochs_trained"] == len(values)
    assert training["best_epoch"] == int(values.idxmin())
    assert training["best_value"] == pytest.approx(values.min())
    if training["stopped_early"]:
        last = len(values) - 1
        assert training["stop_reason"].startswith(f"early stopping at epoch {last}: val/loss")
        # Patience 2: the last two checks did not beat the best before them.
        assert values.iloc[-2:].min() >= values.iloc[:-2].min()
    else:
        assert training["stop_reason"] == "max_epochs=12 reached"
    evaluated = training["best_epoch"] if which == "best" else training["epochs_trained"] - 1
    assert training["evaluated_checkpoint"] == which
    assert training["evaluated_epoch"] == evaluated
    assert training["threads"]["threads"] == 1
    assert training["threads"]["source"] == "trainer.threads"
    assert training["allocator"] == ("reuse" if _glibc() is not None else "system (not GNU libc)")
    # model.safetensors holds the evaluated checkpoint's weights.
    saved = load_file(str(result.run_dir / "model.safetensors"))
    checkpoint = load_checkpoint(result.run_dir / training["evaluated_path"])
    assert checkpoint["epoch"] == evaluated
    for key, value in checkpoint["state_dict"].items():
        assert torch.equal(saved[key], value), key
