"""Fault injection for single runs: kill and resume, non-finite losses, safe loading."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from modalab.experiments.checkpoint import UntrustedCheckpointError, load_checkpoint
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.rundir import load_weights
from modalab.experiments.runner import TrainingError, run

SMALL = [
    "data.n_samples=800",
    "trainer.batch_size=64",
    "trainer.enable_progress_bar=false",
    "eval.l2_grid=[0.01]",
    "method=supervised",
    "trainer.threads=1",  # float sums depend on the thread count: the same in every process
]


def _metrics(run_dir: Path) -> list:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics_bit_for_bit(tmp_path: Path) -> None:
    overrides = [*SMALL, "trainer.max_epochs=8", f"output_dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "modalab", "run", "--quiet", *overrides, "run_name=killed"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    killed_dir = tmp_path / "killed"
    deadline = time.time() + 120
    while not (killed_dir / "checkpoints" / "last.ckpt").exists():
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "metrics.json").exists(), "the run finished before it was killed"
    saved = load_checkpoint(killed_dir / "checkpoints" / "last.ckpt")
    assert saved["epoch"] < 7
    # Without resume=true an unfinished run directory is protected.
    with pytest.raises(ConfigError, match="add resume=true"):
        run(compose_config([*overrides, "run_name=killed"]), quiet=True)
    # A changed config cannot resume it.
    with pytest.raises(ConfigError, match=r"trainer.max_epochs: 8 -> 9"):
        run(
            compose_config(
                [
                    *SMALL,
                    "trainer.max_epochs=9",
                    f"output_dir={tmp_path}",
                    "run_name=killed",
                    "resume=true",
                ]
            ),
            quiet=True,
        )
    # Float sums depend on the number of intra-op threads: compare at the killed run's count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        resumed = run(compose_config([*overrides, "run_name=killed", "resume=true"]), quiet=True)
        full = run(compose_config([*overrides, "run_name=full"]), quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert _metrics(resumed.run_dir) == _metrics(full.run_dir)
    # Resuming a finished run returns its results without training again.
    again = run(compose_config([*overrides, "run_name=full", "resume=true"]), quiet=True)
    assert [r.value for r in again.metrics] == [r.value for r in full.metrics]


def test_resume_needs_a_run_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="resume=true needs the run_name="):
        run(compose_config([*SMALL, "resume=true", f"output_dir={tmp_path}"]))


@pytest.mark.slow
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    # A learning rate of 1e30 makes the weights explode within the second epoch.
    cfg = compose_config(
        [
            *SMALL,
            "trainer.max_epochs=6",
            "method.lr=1e30",
            f"output_dir={tmp_path}",
            "run_name=nan",
            "data.n_samples=400",
        ]
    )
    with pytest.raises(
        TrainingError,
        match=r"(Non-finite gradients|training loss is nan).*"
        r"Lower method.lr",
    ) as info:
        run(cfg, quiet=True)
    failure = json.loads((tmp_path / "nan" / "failure.json").read_text())
    assert failure["error"] == str(info.value)
    assert not (tmp_path / "nan" / "metrics.json").exists()
    last = tmp_path / "nan" / "checkpoints" / "last.ckpt"
    if last.exists():  # whatever was saved holds only finite weights
        state = load_checkpoint(last)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


class _Payload:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo unsafe",))


def test_pickle_checkpoints_that_need_code_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.ckpt"
    with evil.open("wb") as handle:
        pickle.dump({"state_dict": {}, "x": _Payload()}, handle)
    with pytest.raises(UntrustedCheckpointError, match="weights_only=True"):
        load_checkpoint(evil)
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, plain)
    assert torch.equal(load_checkpoint(plain)["state_dict"]["w"], torch.ones(2))


@pytest.mark.slow
def test_finished_run_saves_safetensors_weights_that_reload(tmp_path: Path) -> None:
    from modalab.experiments.build import build_data, build_encoders, build_method
    from modalab.experiments.io import load_yaml

    result = run(
        compose_config([*SMALL, "trainer.max_epochs=1", f"output_dir={tmp_path}", "run_name=w"]),
        quiet=True,
    )
    cfg = load_yaml(result.run_dir / "config.yaml")
    splits = build_data(cfg["data"])
    model = build_method(
        cfg["method"], build_encoders(cfg["model"], splits), splits, cfg["model"]["embed_dim"]
    )
    load_weights(model, result.run_dir)
    ckpt = load_checkpoint(result.run_dir / "checkpoints" / "last.ckpt")["state_dict"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt[key]), key


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    from modalab.experiments.io import load_yaml

    path = tmp_path / "config.yaml"
    path.write_text("a: !!python/object/apply:os.system ['echo unsafe']\n")
    with pytest.raises(Exception, match="could not determine a constructor"):
        load_yaml(path)
    path.write_text("a: ${oc.env:HOME}\n")
    assert load_yaml(path) == {"a": "${oc.env:HOME}"}  # never resolved
