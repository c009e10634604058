"""Sweeps: a study grid (methods × scenarios × severities × seeds) run in parallel, resumable.

A study is a YAML file (see ``studies/`` and ``docs/sweeps.md``)::

    name: missing_modality
    store: results/missing_modality      # the results store the runs append to
    output_dir: runs/missing_modality    # run directories
    overrides: [data.n_samples=1200, trainer.max_epochs=4]
    methods:                             # one line per method: name: [extra overrides]
      clip: []
      supervised: []
      image_only:                        # or a mapping: overrides, and the only scenarios
        overrides: [method=supervised, "data.modalities=[image]"]
        scenarios: [image_noise]         # (a control that only some scenarios apply to)
      no_audio:                          # a reference row: run once per seed without the
        overrides: [method=supervised, "data.modalities=[image,text]"]
        reference: true                  # scenario, shown at every severity of its tables
    scenarios:
      audio_missing_at_test:
        overrides: ["scenario=[missing]", "scenario.missing.stage=[test]"]
        severity: scenario.missing.rate  # the config key the curve's x-axis varies
        values: [0.0, 0.5, 1.0]
    seeds: [0, 1, 2]
    smoke: {overrides: [data.n_samples=200], seeds: [0], levels: 2}

Each grid point becomes a list of Hydra overrides, composed and validated before anything
runs. Its run id is the hash of the resolved config (:func:`~modalab.experiments.runner.run_id`),
so a sweep started again skips every run whose rows are already in the store and runs only
the rest: an interrupted sweep resumes (a run killed half-way continues from its last
checkpoint, ``resume=true``). Runs execute in worker processes
(:class:`concurrent.futures.ProcessPoolExecutor`, ``spawn``), each with the idle cores
(CPUs minus the load average) ``// jobs`` torch threads unless ``OMP_NUM_THREADS`` is set
(:mod:`modalab.experiments.threads`). For a cluster, :func:`hydra_commands` prints the
equivalent Hydra multirun commands for the submitit (SLURM) or Ray launchers.
"""

from __future__ import annotations

import concurrent.futures as futures
import logging
import math
import multiprocessing
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.errors import RunInterrupted
from modalab.experiments.store import ResultsStore
from modalab.experiments.threads import auto_threads, available_cpus, load_average

__all__ = [
    "GridRun",
    "ScenarioSpec",
    "StudySpec",
    "SweepSummary",
    "expand_study",
    "hydra_commands",
    "load_study",
    "run_sweep",
    "seed_major",
]


@dataclass
class ScenarioSpec:
    """One scenario axis of a study.

    Attributes:
        overrides: Hydra overrides that select and configure the scenario.
        severity: The config key varied along the curve (recorded as ``severity_key``).
        values: The severities.
    """

    overrides: list[str] = field(default_factory=list)
    severity: str = ""
    values: list[float] = field(default_factory=list)


@dataclass
class SmokeSpec:
    """The tiny variant of a study (``--smoke``), for CI.

    Attributes:
        overrides: Overrides appended to the study's (smaller data, one epoch).
        datasets: Dataset label → overrides appended for that dataset only (e.g.
            ``avmnist: [data.max_images=300]``).
        seeds: Seeds of the smoke run.
        levels: Severities kept per scenario (the first and last, then evenly spaced).
    """

    overrides: list[str] = field(default_factory=list)
    datasets: dict[str, list[str]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    levels: int = 2


@dataclass
class StudySpec:
    """A study file.

    Attributes:
        name: Study name, recorded in the store's ``study`` column.
        store: Results store folder (relative paths are relative to the working directory).
        output_dir: Parent folder of the run directories.
        overrides: Overrides shared by every run.
        datasets: Dataset label → overrides (e.g. ``avmnist: [data=avmnist]``); the label is
            recorded in the store's ``data`` column. Empty: one dataset, the overrides' own.
        methods: Method label → extra overrides; ``method=<label>`` is added unless the
            extra overrides select a method themselves. In the file, a method may instead be
            a mapping ``{overrides: [...], scenarios: [labels]}``; :func:`load_study` puts
            the overrides here and the scenarios in ``method_scenarios``.
        method_scenarios: Method label → the only scenario labels it runs under (a control
            that some scenarios do not apply to: an image-only model under an obstacle of
            the text). Methods not listed run under every scenario.
        reference_methods: Methods run *without* the scenario, once per seed and scenario
            label (severity NaN in the store), for a control that a scenario cannot apply
            to because it lacks the modality the scenario acts on (a model without the
            image, under the image's absence). :func:`modalab.experiments.curves.
            broadcast_references` shows such a run at every severity of its scenario's
            curve: a flat reference row, tested seed by seed like any other. In the file:
            ``{overrides: [...], reference: true}``.
        scenarios: Scenario label → :class:`ScenarioSpec`.
        seeds: Seeds.
        seed_data: Vary the data with the seed: every run gets ``data.seed=${seed}``, so
            that the spread over seeds includes the draw of the data (generated samples,
            splits, pairings) and not only initialisation and batch order. Methods run with
            the same seed still see the same data, so their comparison stays paired.
        jobs: Default number of parallel worker processes.
        smoke: The ``--smoke`` variant.
        tables: The study's tables (read by :func:`modalab.experiments.tables.load_tables`).
    """

    name: str = "study"
    store: str = "results/study"
    output_dir: str = "runs/study"
    overrides: list[str] = field(default_factory=list)
    datasets: dict[str, list[str]] = field(default_factory=dict)
    methods: dict[str, Any] = field(default_factory=dict)
    method_scenarios: dict[str, list[str]] = field(default_factory=dict)
    reference_methods: list[str] = field(default_factory=list)
    scenarios: dict[str, ScenarioSpec] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_data: bool = False
    jobs: int = 1
    smoke: SmokeSpec = field(default_factory=SmokeSpec)
    tables: list[Any] = field(default_factory=list)


def load_study(path: str | os.PathLike[str]) -> StudySpec:
    """Read and validate a study YAML file (unknown keys are errors).

    Raises:
        ConfigError: If the file is missing, malformed or inconsistent.
    """
    file = Path(path)
    if not file.exists():
        raise ConfigError(f"Study file {file} does not exist.")
    try:
        raw = yaml.safe_load(file.read_text()) or {}
        merged = OmegaConf.merge(OmegaConf.structured(StudySpec), raw)
        spec: StudySpec = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except (yaml.YAMLError, OmegaConfBaseException) as error:
        raise ConfigError(f"Invalid study file {file}: {error}") from None
    if not spec.methods:
        raise ConfigError(f"Study {file} lists no methods (methods: {{clip: []}}).")
    if not spec.scenarios:
        raise ConfigError(f"Study {file} lists no scenarios.")
    if spec.method_scenarios or spec.reference_methods:
        raise ConfigError(
            f"Study {file}: method_scenarios and reference_methods are not study-file keys; "
            "write methods: {label: {overrides: [...], scenarios: [...], reference: true}}."
        )
    for label, entry in list(spec.methods.items()):
        spec.methods[label] = _method_entry(file, label, entry, spec)
    for label, scenario in spec.scenarios.items():
        if not scenario.severity or not scenario.values:
            raise ConfigError(
                f"Scenario {label!r} of study {file} needs a severity key and values."
            )
    unknown = set(spec.smoke.datasets) - set(spec.datasets)
    if unknown:
        raise ConfigError(
            f"smoke.datasets of study {file} names {sorted(unknown)}, not among its datasets "
            f"{sorted(spec.datasets)}."
        )
    if not spec.seeds or spec.jobs < 1 or spec.smoke.levels < 1:
        raise ConfigError(f"Study {file} needs seeds, jobs >= 1 and smoke.levels >= 1.")
    return spec


def _method_entry(file: Path, label: str, entry: Any, spec: StudySpec) -> list[str]:
    """A method's overrides (a mapping's ``scenarios`` and ``reference`` go to the spec)."""
    if isinstance(entry, list):
        return [str(o) for o in entry]
    keys = {"overrides", "scenarios", "reference"}
    if not isinstance(entry, dict) or not set(entry) <= keys:
        raise ConfigError(
            f"Method {label!r} of study {file} must be a list of overrides or a mapping with "
            f"the keys overrides, scenarios and reference; got {entry!r}."
        )
    if not isinstance(entry.get("reference", False), bool):
        raise ConfigError(
            f"Method {label!r} of study {file}: reference must be true or false; "
            f"got {entry['reference']!r}."
        )
    if "scenarios" in entry:
        scenarios = [str(s) for s in entry.get("scenarios") or []]
        unknown = sorted(set(scenarios) - set(spec.scenarios))
        if unknown or not scenarios:
            raise ConfigError(
                f"Method {label!r} of study {file} names scenarios {unknown or scenarios}; its "
                f"scenarios are {sorted(spec.scenarios)} (list at least one)."
            )
        spec.method_scenarios[label] = scenarios
    if entry.get("reference", False):
        spec.reference_methods.append(label)
    return [str(o) for o in entry.get("overrides") or []]


def _smoke_values(values: Sequence[float], levels: int) -> list[float]:
    if levels >= len(values):
        return list(values)
    if levels == 1:
        return [values[0]]
    step = (len(values) - 1) / (levels - 1)
    return [values[round(i * step)] for i in range(levels)]


@dataclass
class GridRun:
    """One point of a study grid.

    Attributes:
        overrides: The complete Hydra overrides of the run.
        run_id: Its id in the results store.
        dataset: Dataset label (``""`` when the study has no ``datasets:``).
        method: Method label.
        scenario: Scenario label.
        severity: Severity value (NaN: a reference run, made without the scenario).
        seed: Seed.
        training: Its training key (:func:`~modalab.experiments.runner.training_key`): runs
            with one key share one training (``""``: unknown, the run's own).
    """

    overrides: list[str]
    run_id: str
    dataset: str
    method: str
    scenario: str
    severity: float
    seed: int
    training: str = ""

    @property
    def label(self) -> str:
        """A short human-readable name."""
        where = f"{self.dataset} " if self.dataset else ""
        point = "reference" if math.isnan(self.severity) else f"{self.severity:g}"
        return f"{where}{self.method} {self.scenario}={point} seed={self.seed}"


def _fmt(value: float) -> str:
    return repr(float(value))  # 0.5, 1e-05, inf: all parsed back as floats by Hydra


def _override_key(override: str) -> str:
    """The config key of a Hydra override, without its ``+``/``~`` prefix."""
    return override.split("=")[0].lstrip("+~")


def expand_study(
    spec: StudySpec, smoke: bool = False, store: str | None = None
) -> tuple[list[GridRun], str]:
    """Every run of the grid, composed and validated, and the store they write to.

    Args:
        spec: The study.
        smoke: Expand the ``--smoke`` variant (its store is ``<store>_smoke``).
        store: Override the study's store folder.

    Returns:
        ``(runs, store)``.

    Raises:
        ConfigError: If any run's overrides do not compose.
    """
    from modalab.experiments.runner import run_id, training_key

    store = store or (spec.store + ("_smoke" if smoke else ""))
    output_dir = spec.output_dir + ("_smoke" if smoke else "")
    seeds = spec.smoke.seeds if smoke else spec.seeds
    extra = spec.smoke.overrides if smoke else []
    runs = []
    for dataset, data_overrides in (spec.datasets or {"": []}).items():
        for method, method_overrides in spec.methods.items():
            keys = [_override_key(o) for o in method_overrides]
            selects = "method" in keys
            chosen = list(method_overrides) if selects else [f"method={method}", *method_overrides]
            # A reference records no severity, even when its own overrides bring a scenario (a
            # unimodal control made by `missing` at every stage: "none"); without one, the
            # empty key that the stores' reference runs were made with (severity_key is part
            # of a run's identity).
            own = any(k.split(".")[0] == "scenario" for k in keys)
            no_severity = "severity_key=none" if own else "severity_key="
            for label, scenario in spec.scenarios.items():
                if label not in spec.method_scenarios.get(method, [label]):
                    continue  # a control that this scenario does not apply to
                values = (
                    _smoke_values(scenario.values, spec.smoke.levels) if smoke else scenario.values
                )
                reference = method in spec.reference_methods
                # A reference run: the control without the scenario, once per seed.
                point = [math.nan] if reference else values
                for value in point:
                    scenario_overrides = (
                        [no_severity]
                        if reference
                        else [
                            *scenario.overrides,
                            f"{scenario.severity}={_fmt(value)}",
                            f"severity_key={scenario.severity}",
                        ]
                    )
                    for seed in seeds:
                        overrides = [
                            *(["data.seed=${seed}", "seed_data=true"] if spec.seed_data else []),
                            *spec.overrides,
                            *data_overrides,
                            *extra,
                            *(spec.smoke.datasets.get(dataset, []) if smoke else []),
                            *chosen,
                            *scenario_overrides,
                            f"seed={seed}",
                            f"scenario_label={label}",
                            f"method_label={method}",
                            *([f"data_label={dataset}"] if dataset else []),
                            f"study={spec.name}",
                            f"store={store}",
                            f"output_dir={output_dir}",
                        ]
                        cfg = compose_config(overrides)
                        plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
                        plain.pop("defaults", None)
                        rid = run_id(plain)
                        runs.append(
                            GridRun(
                                # quoted: an id such as 4305622474e33403 parses as a float
                                [*overrides, f"run_name='{rid}'", "resume=true"],
                                rid,
                                dataset,
                                method,
                                label,
                                value,
                                seed,
                                training_key(plain),
                            )
                        )
    return runs, store


@dataclass
class SweepSummary:
    """What a sweep did.

    Attributes:
        total: Runs in the grid.
        skipped: Runs already in the store.
        done: Runs finished now.
        failed: ``(label, error)`` of runs that raised.
        seconds: Wall time.
        store: The results store.
    """

    total: int
    skipped: int
    done: int
    failed: list[tuple[str, str]]
    seconds: float
    store: str


#: What :func:`_execute` returns for a run another process holds the lock of.
BUSY = -1.0
#: What :func:`_execute` returns for a run another process finished meanwhile.
ALREADY_DONE = -2.0


def _stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM outside a Lightning fit: stop as Lightning does at the end of a step."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    raise SIGTERMException  # the runner turns it into RunInterrupted (failure.json, hint)


def _init_worker(threads: int) -> None:
    import signal

    import lightning.pytorch  # noqa: F401  (it sets its loggers' levels on import)
    import torch

    torch.set_num_threads(threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # The parent handles Ctrl+C (the terminal sends SIGINT to the whole process group) and
    # forwards SIGTERM; inside a fit Lightning's own SIGTERM handler (which also calls this
    # one) stops at the end of the step, elsewhere this one stops at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _sigterm_in_worker)


def _sigterm_in_worker(signum: int, frame: object) -> None:
    """SIGTERM in a run's process: Lightning's fit handles it, elsewhere the run stops now."""
    import signal

    if signal.getsignal(signal.SIGTERM) is _sigterm_in_worker:  # not inside Lightning's fit
        _stop_on_sigterm(signum, frame)


def _lock_path(store: str, run_id: str) -> Path:
    return Path(store) / ".locks" / f"{run_id}.lock"


def _execute(overrides: list[str], store: str = "", run_id: str = "") -> float:
    """Compose and run one configuration under its lock; returns its wall time.

    Returns :data:`BUSY` when another process holds the run's lock (another sweep of the
    same study trains it) and :data:`ALREADY_DONE` when its rows appeared in the store
    meanwhile.
    """
    import warnings

    from filelock import FileLock, Timeout

    from modalab.experiments.runner import run

    start = time.perf_counter()
    lock = FileLock(str(_lock_path(store, run_id))) if store and run_id else None
    if lock is not None:
        Path(lock.lock_file).parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return BUSY
    try:
        if store and run_id and ResultsStore(store).has(run_id):
            return ALREADY_DONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run(compose_config(overrides), quiet=True)
    finally:
        if lock is not None:
            lock.release()
    return time.perf_counter() - start


def _dropped(run: GridRun) -> str:
    """What the run's data build dropped, from its ``metrics.json``, for the progress line.

    Warnings are muted in workers, so the sweep says it itself.
    """
    import json

    from modalab.experiments.rundir import METRICS_FILE

    output_dir = next(
        (o.split("=", 1)[1] for o in run.overrides if o.startswith("output_dir=")), ""
    )
    try:
        payload = json.loads((Path(output_dir) / run.run_id / METRICS_FILE).read_text())
    except (OSError, ValueError):
        return ""
    skipped = payload.get("skipped") or {}
    removed = sum((payload.get("leakage") or {}).get("removed", {}).values())
    note = ""
    if skipped.get("count"):
        names = ", ".join(Path(f).name for f in skipped.get("files", [])[:3])
        note += f"; {skipped['count']} file(s) skipped: {names}"
    if removed:
        note += f"; {removed} duplicate(s) of training samples removed"
    return note


def _interrupted(signal_number: int, done: int, stopped: int) -> RunInterrupted:
    import signal

    name = signal.Signals(signal_number).name
    return RunInterrupted(
        f"The sweep was interrupted by {name}: {done} run(s) finished now, {stopped} stopped "
        "(their last checkpoints are kept), none started after the signal. Run the same "
        "`modalab sweep` command again to resume: finished runs are skipped, stopped ones "
        "continue from their checkpoints.",
        signal_number,
    )


def seed_major(runs: Sequence[GridRun]) -> list[GridRun]:
    """The runs ordered seed by seed, and within a seed severity level by level.

    A sweep stopped part-way then holds whole replicates — every method, scenario and
    severity of the first seeds — rather than every seed of the first methods, so the tables
    of an unfinished study already compare all its methods, on fewer seeds. Within a seed,
    every run whose training no earlier run of the seed shares comes first, in study order,
    then the runs that share one (:mod:`modalab.experiments.shared`: the severities of a
    test-time obstacle, the rate 0 of two label-noise modes, a self-supervised method's label
    severities), level by level: each group's first run trains while the parallel workers
    run other groups instead of waiting for it. Runs without a known training key are
    grouped by dataset, method and scenario.

    Example:
        >>> from modalab.experiments.sweep import GridRun
        >>> grid = [GridRun([], f"{m}{v}{s}", "", m, "x", v, s)
        ...         for m in "ab" for v in (0, 1) for s in (0, 1)]
        >>> [r.run_id for r in seed_major(grid)]
        ['a00', 'b00', 'a10', 'b10', 'a01', 'b01', 'a11', 'b11']
        >>> keys = {"a0": "k1", "b0": "k1", "a1": "k2", "b1": "k3"}  # a0 and b0 train alike
        >>> grid = [GridRun([], f"{m}{v}", "", m, "x", v, 0, keys[f"{m}{v}"])
        ...         for m in "ab" for v in (0, 1)]
        >>> [r.run_id for r in seed_major(grid)]
        ['a0', 'a1', 'b1', 'b0']
    """
    rank = {seed: i for i, seed in enumerate(dict.fromkeys(r.seed for r in runs))}
    level: dict[tuple[str, ...], int] = {}
    levels = []
    for r in runs:  # the run's position within its training group
        shared = (r.training,) if r.training else (r.dataset, r.method, r.scenario)
        group = (*shared, str(r.seed))
        levels.append(level.get(group, 0))
        level[group] = levels[-1] + 1
    order = sorted(range(len(runs)), key=lambda i: (rank[runs[i].seed], levels[i]))
    return [runs[i] for i in order]


def run_sweep(
    runs: Sequence[GridRun],
    store: str,
    jobs: int = 1,
    progress: Callable[[str], None] = print,
    order: Literal["seed", "grid"] = "seed",
) -> SweepSummary:
    """Run the grid's unfinished runs, ``jobs`` at a time, and report progress.

    SIGTERM or SIGINT (Ctrl+C) stops the sweep: no further run starts, the running ones stop
    at the end of their current step (checkpoint kept) and :class:`RunInterrupted` is raised
    once every worker has ended. Each run holds a lock (``<store>/.locks/<run_id>.lock``)
    while it trains, so a second sweep of the same study skips it with a message.

    Args:
        runs: The expanded grid (:func:`expand_study`).
        store: The results store the runs append to.
        jobs: Worker processes; 1 runs in this process.
        progress: Called with one line per finished run.
        order: ``seed``: seed by seed (:func:`seed_major`, so that an interrupted sweep keeps
            whole replicates); ``grid``: the grid's own order (method by method).

    Returns:
        The summary; failed runs are listed, never hidden.

    Raises:
        RunInterrupted: After SIGTERM/SIGINT (exit status ``128 + signal``).
    """
    import signal

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    start = time.perf_counter()
    finished = ResultsStore(store).run_ids()
    todo = [r for r in (seed_major(runs) if order == "seed" else runs) if r.run_id not in finished]
    total = len(runs)
    skipped = total - len(todo)
    progress(f"sweep: {total} runs, {skipped} already in {store}, {len(todo)} to run, {jobs} jobs")
    failed: list[tuple[str, str]] = []
    busy: list[str] = []
    count = skipped
    done = 0

    def report(run: GridRun, seconds: float | None, error: BaseException | None) -> None:
        nonlocal count, done, skipped
        count += 1
        if error is None and seconds == BUSY:
            busy.append(run.label)
            progress(
                f"[{count}/{total}] busy   {run.label}: another process is training it "
                f"(lock {_lock_path(store, run.run_id)}); skipped here"
            )
        elif error is None and seconds == ALREADY_DONE:
            skipped += 1
            progress(f"[{count}/{total}] done elsewhere {run.label}")
        elif error is None:
            done += 1
            progress(f"[{count}/{total}] done   {run.label} ({seconds:.1f}s){_dropped(run)}")
        else:
            failed.append((run.label, f"{type(error).__name__}: {error}"))
            progress(f"[{count}/{total}] FAILED {run.label}: {type(error).__name__}: {error}")

    threads = auto_threads(available_cpus(), load_average(), jobs)  # the idle cores per worker
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # inherited by spawned workers
    stop: list[int] = []  # the signal that stopped the sweep
    if jobs == 1:
        previous = signal.signal(signal.SIGTERM, _sigterm_in_worker)
        try:
            for run in todo:
                try:
                    report(run, _execute(run.overrides, store, run.run_id), None)
                except RunInterrupted as error:  # SIGTERM / Ctrl+C stops the sweep
                    raise _interrupted(error.signal_number, done, 1) from None
                except SIGTERMException:
                    raise _interrupted(signal.SIGTERM, done, 1) from None
                except KeyboardInterrupt:
                    raise _interrupted(signal.SIGINT, done, 1) from None
                except Exception as error:  # reported and counted, the sweep goes on
                    report(run, None, error)
        finally:
            signal.signal(signal.SIGTERM, previous)
    else:
        context = multiprocessing.get_context("spawn")
        pool = futures.ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_init_worker, initargs=(threads,)
        )

        def on_signal(signum: int, frame: object) -> None:
            if not stop:
                stop.append(signum)
                progress(f"sweep: {signal.Signals(signum).name} received; stopping the workers")
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive() and process.pid is not None:
                    try:
                        os.kill(process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass

        handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        stopped = 0
        try:
            queue = list(todo)
            pending: dict[futures.Future[float], GridRun] = {}
            while queue or pending:
                while queue and not stop and len(pending) < jobs:  # never more than jobs queued
                    run = queue.pop(0)
                    pending[pool.submit(_execute, run.overrides, store, run.run_id)] = run
                if not pending:
                    break
                ready, _ = futures.wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                for future in ready:
                    run = pending.pop(future)
                    failure = future.exception()
                    if stop and isinstance(
                        failure, (RunInterrupted, SIGTERMException, futures.BrokenExecutor)
                    ):
                        stopped += 1
                        progress(f"[{count + 1}/{total}] stopped {run.label}")
                        count += 1
                        continue
                    if isinstance(failure, RunInterrupted):  # a worker signalled directly
                        stop.append(failure.signal_number)
                        stopped += 1
                        count += 1
                        continue
                    report(run, None if failure else future.result(), failure)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
        if stop:
            raise _interrupted(stop[0], done, stopped)
    if busy:
        progress(f"sweep: {len(busy)} run(s) skipped, being trained by another process")
    return SweepSummary(total, skipped, done, failed, time.perf_counter() - start, store)


def hydra_commands(runs: Sequence[GridRun], launcher: str = "submitit_slurm") -> list[str]:
    """Equivalent Hydra multirun commands, one per (dataset, method, scenario), for a launcher.

    Each command sweeps severities and seeds with Hydra's comma syntax and runs through
    ``python -m modalab.experiments.hydra_app``, which skips runs already in the store, so
    the commands are resumable too.

    Args:
        runs: The expanded grid.
        launcher: A Hydra launcher config (``submitit_slurm``, ``submitit_local``, ``ray``).

    Returns:
        Shell command lines.
    """
    groups: dict[tuple[str, str, str], list[GridRun]] = {}
    for run in runs:
        groups.setdefault((run.dataset, run.method, run.scenario), []).append(run)
    commands = []
    for group in groups.values():
        first = group[0]
        severity_key = next(o for o in first.overrides if o.startswith("severity_key="))
        key = severity_key.split("=", 1)[1]
        reference = math.isnan(first.severity)  # no severity to sweep
        varying = ("seed=", "run_name=", "resume=", *([] if reference else [f"{key}="]))
        fixed = [o for o in first.overrides if not o.startswith(varying)]
        severities = ",".join(dict.fromkeys(_fmt(r.severity) for r in group))
        seeds = ",".join(dict.fromkeys(str(r.seed) for r in group))
        sweep = [] if reference else [f"{key}={severities}"]
        args = [*fixed, *sweep, f"seed={seeds}"]
        commands.append(
            "python -m modalab.experiments.hydra_app --multirun "
            f"hydra/launcher={launcher} " + " ".join(shlex.quote(a) for a in args)
        )
    return commands
