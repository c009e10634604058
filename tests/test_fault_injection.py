"""Fault injection beyond one killed run (tests/test_reliability.py): signals, sweeps, writers.

* SIGTERM and SIGINT stop a run with a non-zero status and a message saying how to resume; the
  resumed run reaches the metrics of an uninterrupted one bit for bit.
* A ``modalab sweep`` killed with SIGKILL half-way re-runs only its unfinished runs when started
  again; the store then holds each run exactly once and no temporary file.
* Store writers killed in the middle of a write (and others writing at the same time) leave a
  store that reads, with every run complete or absent.
* The same config and seed give identical metrics, for one method of each family.
* Config files in a results directory are data: no resolver can execute code from them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import run
from modalab.experiments.store import COLUMNS, ResultsStore

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = [
    "data.n_samples=400",
    "trainer.batch_size=64",
    "trainer.enable_progress_bar=false",
    "eval.l2_grid=[0.01]",
    "eval.retrieval_ks=[1]",
    "method=supervised",
    "trainer.max_epochs=6",
    "trainer.threads=1",  # float sums depend on the thread count: the same in every process
]


def _metrics(run_dir: Path) -> list[dict[str, object]]:
    return json.loads((run_dir / "metrics.json").read_text())["metrics"]  # type: ignore[no-any-return]


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"the process ended before {path} appeared"
        assert time.time() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.02)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _single_thread_run(overrides: list[str]) -> Path:
    # Float sums depend on the number of intra-op threads: compare at the subprocess's count.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(compose_config(overrides), quiet=True).run_dir
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_sigterm_and_sigint_leave_a_resumable_run(tmp_path: Path) -> None:
    overrides = [*SMALL, f"output_dir={tmp_path}"]
    full = _single_thread_run([*overrides, "run_name=full"])
    for sig in (signal.SIGTERM, signal.SIGINT):
        name = sig.name.lower()
        proc = subprocess.Popen(
            [sys.executable, "-m", "modalab", "run", "--quiet", *overrides, f"run_name={name}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=ENV,
            # A shell starts background jobs with SIGINT ignored, and a child inherits that (so
            # Python installs no KeyboardInterrupt handler): give the run the disposition of a
            # foreground terminal, whatever the test runner was started with.
            preexec_fn=_default_sigint,
        )
        _wait_for(tmp_path / name / "checkpoints" / "last.ckpt", proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        # Lightning alone exits 0 on SIGTERM: modalab reports the interruption as 128 + n.
        assert proc.returncode == 128 + sig, err.decode()
        assert f"interrupted by {sig.name}" in err.decode() and "resume=true" in err.decode()
        failure = json.loads((tmp_path / name / "failure.json").read_text())["error"]
        assert f"run_name={name} resume=true" in failure
        assert not (tmp_path / name / "metrics.json").exists()
        resumed = _single_thread_run([*overrides, f"run_name={name}", "resume=true"])
        assert _metrics(resumed) == _metrics(full), sig.name
        assert not (resumed / "failure.json").exists()


def _study(tmp_path: Path) -> Path:
    tiny = [
        "data.n_samples=200",
        "trainer.max_epochs=4",
        "trainer.batch_size=32",
        "model.embed_dim=16",
        "eval.l2_grid=[0.01]",
        "eval.retrieval_ks=[1]",
        # every run trains (the severities of a test-time obstacle would share one training,
        # experiments/shared.py): these tests interrupt training
        "trainer.share_training=false",
    ]
    path = tmp_path / "study.yaml"
    path.write_text(
        f"""
name: killed
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
    values: [0.0, 0.5, 1.0]
seeds: [0]
"""
    )
    return path


@pytest.mark.slow
def test_killed_sweep_reruns_only_unfinished_runs(tmp_path: Path) -> None:
    study = _study(tmp_path)
    store = ResultsStore(tmp_path / "store")
    command = [sys.executable, "-m", "modalab", "sweep", str(study), "--jobs", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    # Kill it while its second run trains: one run finished, one with a checkpoint only.
    deadline = time.time() + 240
    while True:
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.time() < deadline
        finished = store.run_ids()
        started = {p.parents[1].name for p in (tmp_path / "runs").glob("*/checkpoints/last.ckpt")}
        if finished and started - finished:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = store.run_ids()
    interrupted = started - done_before
    stamps = {r: store.path(r).stat().st_mtime_ns for r in done_before}
    assert len(done_before) == 1 and len(interrupted) == 1
    assert not (tmp_path / "runs" / next(iter(interrupted)) / "metrics.json").exists()

    again = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "sweep: 3 runs, 1 already in" in again.stdout and "2 to run" in again.stdout
    assert "1 skipped" in again.stdout
    frame = store.read()
    assert frame["run_id"].nunique() == 3 == len(store.run_ids())
    key = ["run_id", "metric", "modality", "condition"]
    assert not frame.duplicated(key).any()  # no run's rows doubled
    assert set(frame["severity"]) == {0.0, 0.5, 1.0}
    # The finished run was not re-run: its row file is untouched.
    assert {r: store.path(r).stat().st_mtime_ns for r in done_before} == stamps
    assert not [p for p in tmp_path.rglob("*.tmp")], "temporary files were left behind"
    for run_id in store.run_ids():
        assert (tmp_path / "runs" / run_id / "metrics.json").exists()


def _rows(run_id: str, n: int) -> list[dict[str, object]]:
    row = {c: "" for c in COLUMNS} | {"run_id": run_id, "severity": 0.0, "seed": 0, "value": 0.5}
    return [row | {"metric": f"m{i}"} for i in range(n)]


def _writer(root: str, worker: int, stall: bool) -> None:
    """Append runs; with ``stall``, write half a file, then hang until killed."""
    if stall:
        real = pq.write_table

        def half_then_hang(table: object, where: str, **kwargs: object) -> None:
            real(table, where, **kwargs)  # type: ignore[arg-type]
            size = os.path.getsize(where)
            with open(where, "r+b") as handle:
                handle.truncate(size // 2)
            Path(root, f"stalled{worker}").touch()
            time.sleep(600)

        pq.write_table = half_then_hang  # type: ignore[assignment]
    store = ResultsStore(root)
    for i in range(1000 if not stall else 1):
        store.append(f"w{worker}-{i}", _rows(f"w{worker}-{i}", 200))


def test_writers_killed_mid_write_leave_a_readable_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    stalled = [context.Process(target=_writer, args=(str(tmp_path), w, True)) for w in (0, 1)]
    busy = [context.Process(target=_writer, args=(str(tmp_path), w, False)) for w in (2, 3)]
    for p in stalled + busy:
        p.start()
    deadline = time.time() + 60
    while not all((tmp_path / f"stalled{w}").exists() for w in (0, 1)):
        assert time.time() < deadline
        time.sleep(0.01)
    time.sleep(0.3)  # the busy writers are in the middle of their appends
    for p in stalled + busy:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
    for p in stalled + busy:
        p.join()
    frame = ResultsStore(tmp_path).read()
    assert set(frame.columns) == set(COLUMNS)
    assert not {"w0-0", "w1-0"} & set(frame["run_id"])  # half-written: never visible
    assert len(frame) > 0 and frame.groupby("run_id").size().eq(200).all()
    assert set(frame["run_id"]) == ResultsStore(tmp_path).run_ids()
    # What a kill leaves behind are hidden temporary files, which the store never reads.
    leftovers = list((tmp_path / "rows").glob(".*.tmp"))
    assert len(leftovers) >= 2
    assert not [
        p for p in (tmp_path / "rows").iterdir() if p not in leftovers and p.suffix != ".parquet"
    ]


FAMILIES = {
    "contrastive": ["method=clip"],
    "siamese": ["method=simclr"],
    "masked": ["method=masked"],
    "fusion": ["method=fusion"],
    "supervised": ["method=supervised"],
    "repair": ["method=distill", "method.teacher_epochs=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_same_config_and_seed_give_identical_metrics(family: str, tmp_path: Path) -> None:
    overrides = [
        *FAMILIES[family],
        "data.n_samples=160",
        "trainer.max_epochs=2",
        "trainer.batch_size=32",
        "model.embed_dim=16",
        "eval.l2_grid=[0.01]",
        "eval.retrieval_ks=[1]",
        "trainer.enable_progress_bar=false",
        "seed=3",
        f"output_dir={tmp_path}",
    ]
    first = run(compose_config([*overrides, "run_name=a"]), quiet=True)
    second = run(compose_config([*overrides, "run_name=b"]), quiet=True)
    assert len(first.metrics) > 0
    assert _metrics(first.run_dir) == _metrics(second.run_dir)
    other = run(compose_config([*overrides, "run_name=c", "seed=4"]), quiet=True)
    assert _metrics(other.run_dir) != _metrics(first.run_dir)  # the seed matters


def test_no_resolver_can_execute_code_from_a_results_directory(tmp_path: Path) -> None:
    from omegaconf.basecontainer import BaseContainer

    from modalab.experiments.rundir import load_teacher

    compose_config([])  # registers Hydra's and modalab's resolvers, if any
    resolvers = set(BaseContainer._resolvers)
    safe = {"oc.env", "oc.create", "oc.deprecated", "oc.decode", "oc.select", "oc.dict.keys"}
    safe |= {"oc.dict.values", "hydra", "now", "python_version"}
    assert resolvers <= safe, f"unexpected resolvers {resolvers - safe}"
    # A teacher run's config.yaml is read as plain YAML: interpolations stay strings.
    run_dir = tmp_path / "teacher"
    run_dir.mkdir()
    marker = tmp_path / "executed"
    (run_dir / "config.yaml").write_text(
        'data: {name: \'${eval:__import__("os").system("touch ' + str(marker) + "\")}'}\n"
        "model: {embed_dim: 8}\nmethod: {name: clip}\nseed: 0\n"
    )
    (run_dir / "model.safetensors").write_bytes(b"")
    with pytest.raises((ConfigError, KeyError, ValueError), match="eval"):
        load_teacher(str(run_dir), "image")
    assert not marker.exists()
    # On the command line, an unknown resolver is an error, never evaluated.
    with pytest.raises(ConfigError):
        compose_config([f"run_name=${{eval:open('{marker}','w')}}"])
    assert not marker.exists()


def test_checkpoint_killed_before_its_rename_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modalab.experiments.checkpoint import AtomicCheckpointIO, load_checkpoint

    io = AtomicCheckpointIO()
    target = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, target)

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt  # the process stops after writing, before the rename

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, target)
    monkeypatch.undo()
    saved = load_checkpoint(target)
    assert saved["epoch"] == 1 and torch.equal(saved["w"], torch.ones(3))
    assert [p.name for p in target.parent.iterdir()] == ["last.ckpt"]
    with pytest.raises(TypeError, match="storage_options"):
        io.save_checkpoint({}, target, storage_options={"x": 1})


def test_an_interrupted_run_stops_the_sweep_and_a_failed_one_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modalab.experiments import sweep
    from modalab.experiments.errors import RunInterrupted

    runs = [sweep.GridRun([f"seed={i}"], f"r{i}", "", "m", "s", 0.0, i) for i in range(3)]
    started: list[list[str]] = []

    def execute(overrides: list[str], *where: str) -> float:
        started.append(overrides)
        if overrides == ["seed=0"]:
            raise ValueError("bad run")  # an ordinary failure: reported, the sweep goes on
        raise RunInterrupted("interrupted by SIGTERM", int(signal.SIGTERM))

    monkeypatch.setattr(sweep, "_execute", execute)
    lines: list[str] = []
    with pytest.raises(RunInterrupted):
        sweep.run_sweep(runs, str(tmp_path / "store"), jobs=1, progress=lines.append)
    assert started == [["seed=0"], ["seed=1"]]  # the third run never started
    assert any("FAILED" in line and "bad run" in line for line in lines)


@pytest.mark.slow
def test_deterministic_warn_uses_deterministic_algorithms_in_warn_only_mode(
    tmp_path: Path,
) -> None:
    # trainer.deterministic=warn (for CUDA, where some backwards have no deterministic kernel)
    # must reach PyTorch as deterministic algorithms that only warn, and be recorded.
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    try:
        result = run(
            compose_config(
                [
                    "method=supervised",
                    "data.n_samples=160",
                    "trainer.max_epochs=1",
                    "trainer.batch_size=32",
                    "model.embed_dim=16",
                    "eval.l2_grid=[0.01]",
                    "eval.retrieval_ks=[1]",
                    "trainer.enable_progress_bar=false",
                    "trainer.deterministic=warn",
                    f"output_dir={tmp_path}",
                ]
            ),
            quiet=True,
        )
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    assert "deterministic: warn" in (result.run_dir / "config.yaml").read_text()
