"""A parallel sweep stops with every worker on SIGTERM/SIGINT; two sweeps of one study never
train the same run twice (a lock per run)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modalab.experiments.store import ResultsStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _study(tmp_path: Path, epochs: int, values: str) -> Path:
    tiny = [
        "data.n_samples=200",
        f"trainer.max_epochs={epochs}",
        "trainer.batch_size=32",
        "model.embed_dim=16",
        "eval.l2_grid=[0.01]",
        "eval.retrieval_ks=[1]",
        "trainer.enable_progress_bar=false",
        # every run trains (the severities of a test-time obstacle would share one training,
        # experiments/shared.py): these tests interrupt training
        "trainer.share_training=false",
    ]
    path = tmp_path / "study.yaml"
    path.write_text(
        f"""
name: signals
store: {tmp_path}/store
output_dir: {tmp_path}/runs
overrides: {tiny}
methods:
  supervised: []
scenarios:
  audio_missing:
    overrides: ["scenario=[missing]", "scenario.missing.modalities=[audio]",
                "scenario.missing.stage=[test]"]
    severity: scenario.missing.rate
    values: {values}
seeds: [0]
"""
    )
    return path


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_store_complete(tmp_path: Path) -> set[str]:
    store = ResultsStore(tmp_path / "store")
    finished = store.run_ids()
    frame = store.read()
    assert set(frame["run_id"]) == finished
    for run_id in finished:  # every stored run is a finished run, never a partial one
        assert (tmp_path / "runs" / run_id / "metrics.json").exists()
    assert not store.corrupt_ids()
    assert not list(tmp_path.rglob("*.tmp")), "temporary files were left behind"
    return finished


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_every_worker_of_a_parallel_sweep(tmp_path: Path, sig: signal.Signals) -> None:
    study = _study(tmp_path, epochs=40, values="[0.0, 0.25, 0.5, 0.75, 1.0]")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modalab", "sweep", str(study), "--jobs", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
        text=True,
        start_new_session=True,  # its own process group: what survives is visible
    )
    deadline = time.time() + 300
    while len(list((tmp_path / "runs").glob("*/checkpoints/last.ckpt"))) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the workers did not both start training"
        time.sleep(0.05)
    started = {p.name for p in (tmp_path / "runs").iterdir()}
    signalled = time.time()
    proc.send_signal(sig)  # to the parent only, as `kill PID` does
    out, err = proc.communicate(timeout=120)
    stopped_in = time.time() - signalled
    assert proc.returncode == 128 + sig, (out, err)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    assert "interrupted by " + sig.name in err and "again to resume" in err
    grace = time.time() + 10
    while _group_alive(proc.pid) and time.time() < grace:
        time.sleep(0.1)
    assert not _group_alive(proc.pid), "a process of the sweep survived it"
    assert {p.name for p in (tmp_path / "runs").iterdir()} == started  # nothing started after
    finished = _assert_store_complete(tmp_path)
    assert len(finished) < 5 and stopped_in < 60
    for run_dir in (tmp_path / "runs").iterdir():
        if run_dir.name not in finished:  # stopped: checkpoint kept, failure.json says why
            assert (run_dir / "failure.json").exists() or not (run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_two_concurrent_sweeps_of_one_study_train_each_run_once(tmp_path: Path) -> None:
    study = _study(tmp_path, epochs=3, values="[0.0, 0.5, 1.0]")
    command = [sys.executable, "-m", "modalab", "sweep", str(study), "--jobs", "1"]
    first = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True
    )
    second = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True
    )
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    for proc, (out, err) in zip((first, second), outputs):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in out + err
    text = outputs[0][0] + outputs[1][0]
    trained = text.count("] done   ")  # a run trained by this process
    elsewhere = text.count("busy") + text.count("done elsewhere")
    finished = _assert_store_complete(tmp_path)
    assert len(finished) == 3
    assert trained == 3, text  # each run trained exactly once over both sweeps
    assert trained + elsewhere >= 3, text
    for run_id in finished:  # one training per run directory: one CSV log, one version
        logs = list((tmp_path / "runs" / run_id).rglob("metrics.csv"))
        assert len([p for p in logs if "logs" in p.parts]) <= 1
