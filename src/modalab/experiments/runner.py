"""The runner: the life of one run — its identity and directory, training, evaluation, results.

The objects come from the composition root (:mod:`modalab.experiments.build`); the files of
the run directory are named in :mod:`modalab.experiments.rundir`.

Scenarios shape what each phase sees (:func:`~modalab.scenarios.apply_scenarios`): the method
trains on the train split after the ``pretrain`` scenarios (and validates on the val split
after the ``val`` ones), the probes train on the train split after the ``downstream``
scenarios, and the reported metrics — plus the representation diagnostics — come from the
test split after the ``test`` scenarios.

With ``store=PATH`` the rows are also appended to the results store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import math
import os
import platform
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from modalab.data import DATASETS
from modalab.data.tensor_dataset import make_loader
from modalab.evaluation.diagnostics import representation_diagnostics
from modalab.evaluation.features import (
    EvalConfig,
    MetricRecord,
    evaluate_representations,
    extract_features,
    obstacle_fitted_records,
)
from modalab.evaluation.repair import (
    head_accuracy_records,
    noisy_probe_records,
    pair_flag_records,
)
from modalab.evaluation.zero_shot import class_embeddings, zero_shot_records
from modalab.experiments.allocator import release_freed_memory, set_allocator
from modalab.experiments.build import (
    build_data,
    build_encoders,
    build_method,
    build_run_scenarios,
)
from modalab.experiments.callbacks import FiniteGuard, NonFiniteError, RNGStateCheckpoint
from modalab.experiments.chatter import lightning_chatter_off
from modalab.experiments.checkpoint import AtomicCheckpointIO, intact_checkpoint
from modalab.experiments.config import ConfigError, MlflowConfig
from modalab.experiments.data_checks import (
    check_environment,
    check_finite_features,
    check_run_data,
    integrity_records,
)
from modalab.experiments.errors import RunInterrupted, TrainingError
from modalab.experiments.io import atomic_write_text, load_yaml
from modalab.experiments.loggers import build_loggers
from modalab.experiments.rundir import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    FAILURE_FILE,
    METRICS_CSV_FILE,
    METRICS_FILE,
    load_teacher,
    record_data_dir,
    save_weights,
    write_failure,
)
from modalab.experiments.shared import SHARED_DIR, SharedTraining
from modalab.experiments.store import ResultsStore
from modalab.experiments.threads import apply_threads, choose_threads
from modalab.experiments.training import (
    TrainingOptions,
    select_checkpoint,
    split_trainer_config,
    training_callbacks,
    training_summary,
)
from modalab.methods.registry import LABEL_FREE_METHODS, RepresentationLearner
from modalab.scenarios import SCENARIOS, apply_scenarios, fitted_under_test

__all__ = [
    "RunInterrupted",
    "RunResult",
    "TrainingError",
    "config_hash",
    "load_finished",
    "result_rows",
    "run",
    "run_id",
]

# Keys that say where results go or how a run proceeds, not what it computes: left out of
# the hashes that identify a run.
_PLACEMENT_KEYS = (
    "output_dir",
    "run_name",
    "store",
    "resume",
    "scenario_label",
    "method_label",
    "data_label",
    "loggers",
    "mlflow",
    "defaults",
)


@dataclass
class RunResult:
    """What a run produced.

    Attributes:
        run_dir: The run directory.
        metrics: The evaluation records.
        config: The resolved config.
        train_seconds: Wall time of training.
        eval_seconds: Wall time of evaluation.
        is_global_zero: False in the other processes of a DDP run, which neither evaluate
            nor write results (their ``metrics`` are empty).
        training: How training went: the evaluated epoch and checkpoint, the best monitored
            value, why training stopped, the thread setting
            (:func:`~modalab.experiments.training.training_summary`).
    """

    run_dir: Path
    metrics: list[MetricRecord]
    config: dict[str, Any]
    train_seconds: float
    eval_seconds: float
    is_global_zero: bool = True
    training: dict[str, Any] = dataclasses.field(default_factory=dict)
    data_info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """The metrics as a DataFrame, one row per metric × modality × condition."""
        return pd.DataFrame([dataclasses.asdict(r) for r in self.metrics])

    def value(self, metric: str, modality: str = "", condition: str | None = None) -> float:
        """The value of one metric (the first whose condition matches, if given)."""
        for r in self.metrics:
            if (
                r.metric == metric
                and r.modality == modality
                and (condition is None or r.condition == condition)
            ):
                return r.value
        raise KeyError(f"No metric {metric!r} for {modality!r} ({condition}).")


def _digest(payload: Mapping[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Trainer keys that change how fast a run goes or how it shows, not what it computes: not part
#: of its identity, free to differ when it resumes.
_HOW_FAST = ("enable_progress_bar", "threads", "allocator", "share_training")


def _resolved_data(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """``data`` with the defaults that its dataset fills at build time written in.

    A dataset config with a ``resolved()`` method (``data=avmnist``: the fields that
    ``data.protocol`` fills) is hashed as resolved, so that a change of a protocol's default
    (e.g. ``multibench``'s validation speakers) changes the identity of the runs it changes,
    instead of a store's finished run silently standing for a different computation.
    """
    entries = DATASETS.entries(str(data.get("name", "")))
    config = entries[0].config if len(entries) == 1 else None
    if config is None or not hasattr(config, "resolved"):
        return data
    accepted = {f.name for f in dataclasses.fields(config)}
    try:
        resolved = config(**{k: v for k, v in data.items() if k in accepted}).resolved()
    except (TypeError, ValueError):  # a bad value: validation reports it, not the hash
        return data
    return {**data, **dataclasses.asdict(resolved)}


def _identity(cfg: Mapping[str, Any], drop: Sequence[str] = ()) -> dict[str, Any]:
    """The config without placement and presentation keys (and ``drop``), data resolved."""
    out = {k: v for k, v in cfg.items() if k not in (*_PLACEMENT_KEYS, *drop)}
    if isinstance(out.get("data"), Mapping):
        out["data"] = _resolved_data(out["data"])
    if isinstance(out.get("trainer"), Mapping):
        out["trainer"] = {k: v for k, v in out["trainer"].items() if k not in _HOW_FAST}
    return out


def config_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of what a run computes, without seed and study: seeds of one config share it.

    With ``seed_data=true`` (a study's ``seed_data: true``) ``data.seed`` follows the seed and
    counts as tied to it; a ``data.seed`` that merely equals the seed (seed 0 with the default
    ``data.seed=0``) does not, so that the seeds of one config always share one hash.
    """
    identity = _identity(cfg, drop=("seed", "study"))
    data = identity.get("data")
    # validate_config refuses seed_data=true with a data.seed other than the seed.
    if cfg.get("seed_data") and isinstance(data, Mapping) and data.get("seed") == cfg.get("seed"):
        identity["data"] = {**data, "seed": "${seed}"}
    return _digest(identity)


def run_id(cfg: Mapping[str, Any]) -> str:
    """Hash of the resolved config with seed and study: the identity of a run in a store."""
    return _digest(_identity(cfg))


def _severity(cfg: Mapping[str, Any]) -> tuple[str, float]:
    """The severity key and its value (NaN without scenario or key, and for ``none``).

    ``severity_key=none`` records no severity although the run has scenarios: a study's
    reference run, made without the study's scenario, whose own overrides may bring one
    (a unimodal control made by a ``missing`` scenario at every stage).
    """
    key = str(cfg.get("severity_key") or "")
    if key == "none":
        return "", math.nan
    names = list(cfg.get("scenario") or {})
    if not key and names:
        key = f"scenario.{names[0]}.{SCENARIOS.get(names[0]).severity_param}"
    if not key:
        return "", math.nan
    value = OmegaConf.select(OmegaConf.create(dict(cfg)), key)
    try:
        return key, float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"severity_key={key!r} must name a numeric config value; it holds {value!r}."
        ) from None


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


#: Environment variable through which the launching process hands its run directory to the
#: processes Lightning's DDP strategy starts (they re-run the same command).
RUN_DIR_ENV = "MODALAB_RUN_DIR"


def _launched_rank() -> int:
    """This process's rank as set by a launcher (0 for the process that launches the others)."""
    for variable in ("RANK", "LOCAL_RANK"):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def _run_dir(cfg: Mapping[str, Any]) -> Path:
    """The run directory: new, or the interrupted one to resume (checked against its config)."""
    if _launched_rank() != 0 and RUN_DIR_ENV in os.environ:
        # A DDP worker: it writes nothing (config, metrics, logs and checkpoints are written
        # by global rank 0 only); the directory only needs to exist.
        return Path(os.environ[RUN_DIR_ENV])
    if cfg["resume"] and not cfg["run_name"]:
        raise ConfigError(
            "resume=true needs the run_name= of the run to continue (its directory name under "
            "output_dir=)."
        )
    name = cfg["run_name"] or (
        f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg['data']['name']}-{cfg['method']['name']}"
        f"-s{cfg['seed']}"
    )
    run_dir = Path(cfg["output_dir"]) / name
    if not cfg["run_name"]:
        # An automatic name is unique: two runs started within one second (a script, a Hydra
        # multirun) get -2, -3, ... instead of one refusing the other's directory.
        suffix = 2
        while run_dir.exists():
            run_dir = Path(cfg["output_dir"]) / f"{name}-{suffix}"
            suffix += 1
    saved_config = run_dir / CONFIG_FILE
    if not cfg["resume"]:
        if (run_dir / METRICS_FILE).exists():
            raise ConfigError(
                f"Run directory {run_dir} already holds finished results; choose another "
                "run_name= or output_dir= (results are never overwritten)."
            )
        if saved_config.exists():
            raise ConfigError(
                f"Run directory {run_dir} holds an unfinished run; add resume=true to continue "
                "it from its last checkpoint, or choose another run_name=."
            )
    elif saved_config.exists():
        previous = _flatten(load_yaml(saved_config))
        current = _flatten(cfg)
        ignore = {"resume", "loggers", *(f"trainer.{k}" for k in _HOW_FAST)}
        ignore |= {k for k in set(previous) | set(current) if k.startswith("mlflow.")}
        differ = sorted(
            k
            for k in set(previous) | set(current)
            if k not in ignore and previous.get(k) != current.get(k)
        )
        if differ:
            details = ", ".join(f"{k}: {previous.get(k)!r} -> {current.get(k)!r}" for k in differ)
            raise ConfigError(
                f"resume=true, but the config differs from the one saved in {saved_config}: "
                f"{details}. Resume with the same config, or start a new run_name=."
            )
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
    return run_dir


def load_finished(run_dir: str | Path) -> RunResult:
    """Load the result of a finished run from its ``metrics.json`` and ``config.yaml``."""
    run_dir = Path(run_dir)
    payload = json.loads((run_dir / METRICS_FILE).read_text())
    return RunResult(
        run_dir=run_dir,
        metrics=[MetricRecord(**m) for m in payload["metrics"]],
        config=load_yaml(run_dir / CONFIG_FILE),
        train_seconds=float(payload["train_seconds"]),
        eval_seconds=float(payload["eval_seconds"]),
        training=dict(payload.get("training", {})),
        data_info={k: payload[k] for k in ("skipped", "leakage") if k in payload},
    )


def git_revision() -> str:
    """The git commit of the modalab source tree (with ``+dirty`` if modified), or ``unknown``."""
    import subprocess

    source = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def _versions() -> dict[str, str]:
    import hydra
    import monai
    import sklearn

    import modalab

    return {
        "modalab": modalab.__version__,
        "torch": torch.__version__,
        "lightning": L.__version__,
        "hydra": hydra.__version__,
        "monai": monai.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "git_revision": git_revision(),
    }


def run(cfg: DictConfig | Mapping[str, Any], quiet: bool = False) -> RunResult:
    """Train and evaluate one configuration.

    Args:
        cfg: A composed config (see :func:`~modalab.experiments.config.compose_config`).
        quiet: Disable the progress bar and Lightning's console summaries.

    Returns:
        The run's result; everything is also written to its run directory.
    """
    plain: dict[str, Any] = (
        OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        if isinstance(cfg, DictConfig)
        else dict(cfg)
    )
    plain.pop("defaults", None)
    plain.setdefault("resume", False)
    lightning_chatter_off()  # Lightning's banners and tips, unless MODALAB_VERBOSE=1
    seed = int(plain["seed"])
    store = ResultsStore(plain["store"]) if plain.get("store") else None
    _severity(plain)  # a bad severity_key fails before training, not after
    check_environment(plain)  # no GPU, unwritable folders: before anything is written
    run_dir = _run_dir(plain)
    if plain["resume"] and (run_dir / METRICS_FILE).exists():
        finished = load_finished(run_dir)
        if store is not None and not store.has(run_id(plain)):
            store.append(run_id(plain), _store_rows(finished))
        return finished
    if store is not None and store.has(run_id(plain)):
        raise ConfigError(
            f"The results store {store.root} already holds run {run_id(plain)}; results are "
            "never overwritten (`modalab sweep` skips finished runs)."
        )
    trainer_cfg, options = split_trainer_config(plain["trainer"])
    devices = trainer_cfg.get("devices")  # processes of the run on this machine share its cores
    processes = devices if isinstance(devices, int) and devices > 0 else 1
    threads = apply_threads(choose_threads(options.threads, processes))
    allocator = set_allocator(options.allocator)
    L.seed_everything(seed, workers=True, verbose=False)
    splits = check_run_data(plain, build_data(plain["data"]))
    scenarios = build_run_scenarios(plain.get("scenario"), splits)
    seen = {
        stage: apply_scenarios(splits, scenarios, stage, seed)
        for stage in ("pretrain", "downstream", "val", "test")
    }
    L.seed_everything(seed, workers=True, verbose=False)
    encoder = build_encoders(plain["model"], splits)
    embed_dim = int(plain["model"]["embed_dim"])
    method = build_method(
        plain["method"], encoder, splits, embed_dim, seed=seed, load_teacher=load_teacher
    )
    try:
        eval_cfg = EvalConfig(**plain["eval"])
    except TypeError as error:
        raise ConfigError(f"Invalid eval config: {error}") from None
    cast(Any, method).lr_schedule = options.lr_schedule  # read by adamw_with_schedule
    batch_size = int(trainer_cfg.pop("batch_size"))
    if batch_size < 2:
        raise ConfigError(f"trainer.batch_size={batch_size} must be at least 2.")
    if len(seen["pretrain"]) < batch_size:
        # drop_last would leave no batch at all: train on the whole split as one batch.
        batch_size = len(seen["pretrain"])
    if quiet:
        trainer_cfg["enable_progress_bar"] = False

    config_text = OmegaConf.to_yaml(OmegaConf.create(plain))
    if _launched_rank() == 0 and not (run_dir / CONFIG_FILE).exists():
        atomic_write_text(run_dir / CONFIG_FILE, config_text)
        record_data_dir(run_dir, plain["data"])  # the folder read, for counterfactual/report
    sharing = _sharing(plain, options, processes)
    with sharing.lock() if sharing is not None else contextlib.nullcontext():
        entry = sharing.load(method, run_dir, run_id(plain)) if sharing is not None else None
        if entry is not None:  # trained by a run that differs only at test time
            # shared_from: the directory, beside this one, that trained the weights
            training = {**entry["training"], "shared_from": Path(entry["run_dir"]).name}
            train_seconds = 0.0
        else:
            trainer, train_seconds = _fit(
                plain, method, seen, trainer_cfg, options, batch_size, run_dir, quiet
            )
            release_freed_memory()  # training's kept blocks: evaluation batches differ
            (run_dir / FAILURE_FILE).unlink(missing_ok=True)  # a resumed run has finished
            if not trainer.is_global_zero:
                # Under DDP only global rank 0 evaluates and writes results.
                return RunResult(run_dir, [], plain, train_seconds, 0.0, is_global_zero=False)
            training = training_summary(trainer, options)
            training |= select_checkpoint(trainer, method, eval_cfg.checkpoint)
        save_weights(method, run_dir, config_text)  # the evaluated weights
        if sharing is not None and entry is None:
            sharing.register(run_id(plain), run_dir, dict(training), train_seconds)
    training["threads"] = threads.as_dict()
    training["allocator"] = allocator

    start = time.perf_counter()
    method.eval()
    if not isinstance(method, RepresentationLearner):
        raise TypeError(f"{type(method).__name__} lacks representations/joint_embeddings.")
    train_f, val_f, test_f = (
        extract_features(
            method.representations,
            split,
            method.joint_embeddings,
            eval_cfg.batch_size,
            device=method.device,
        )
        for split in (seen["downstream"], seen["val"], seen["test"])
    )
    check_finite_features({"train": train_f, "val": val_f, "test": test_f}, run_dir)
    joint_space = getattr(method, "trains_joint_space", True)  # else no retrieval/alignment rows
    if not joint_space:
        train_f.joint, val_f.joint, test_f.joint = {}, {}, {}
    metrics = evaluate_representations(
        train_f, val_f, test_f, splits.num_classes, eval_cfg, seed=seed
    )
    # Probes fitted under the test-time obstacles too (none at test time: they would be these).
    under_test = fitted_under_test(scenarios) if eval_cfg.probe_fit == "both" else scenarios
    if any(a.stage != b.stage for a, b in zip(scenarios, under_test)):
        under = apply_scenarios(splits, under_test, "downstream", seed)
        under_f = extract_features(
            method.representations,
            under,
            method.joint_embeddings,
            eval_cfg.batch_size,
            device=method.device,
        )
        if not joint_space:  # as for the splits above: no joint views to probe
            under_f.joint = {}
        metrics += obstacle_fitted_records(
            under_f, val_f, test_f, splits.num_classes, eval_cfg, seed
        )
    metrics += representation_diagnostics(test_f.features, test_f.joint, test_f.present)
    metrics += head_accuracy_records(method, seen["test"], eval_cfg.batch_size)
    metrics += pair_flag_records(method, seen["pretrain"])
    if eval_cfg.noisy_probe_losses or eval_cfg.noisy_probe_forget_rate > 0:
        metrics += noisy_probe_records(
            train_f,
            test_f,
            splits.num_classes,
            eval_cfg.noisy_probe_losses,
            eval_cfg.noisy_probe_forget_rate,
            seed=seed,
        )
    prompts = splits.info.class_prompt_tokens
    if prompts is not None and "text" in splits.modalities and joint_space:  # zero-shot
        classes = class_embeddings(
            method.representations,
            method.joint_embeddings,
            prompts,
            "text",
            method.device,
        )
        metrics += zero_shot_records(test_f, classes, "text")
    metrics += integrity_records(splits.info)  # skipped files, removed duplicates (if any)
    eval_seconds = time.perf_counter() - start

    data_info = splits.info.record()  # skipped files, removed duplicates: to metrics.json
    result = RunResult(
        run_dir, metrics, plain, train_seconds, eval_seconds, training=training, data_info=data_info
    )
    if store is not None:  # before metrics.json: a run marked finished is in the store
        store.append(run_id(plain), _store_rows(result))
    _write_metrics(result)
    return result


def _fit(
    plain: dict[str, Any],
    method: L.LightningModule,
    seen: Mapping[str, Any],
    trainer_cfg: dict[str, Any],
    options: TrainingOptions,
    batch_size: int,
    run_dir: Path,
    quiet: bool,
) -> tuple[L.Trainer, float]:
    """Train ``method`` (resuming from the run's newest intact checkpoint when asked).

    Returns:
        The Trainer after ``fit`` and the seconds it took.

    Raises:
        TrainingError: On non-finite values (the last good checkpoint is kept).
        RunInterrupted: On SIGTERM or Ctrl+C (the run can be resumed).
    """
    seed = int(plain["seed"])
    checkpoints = run_dir / CHECKPOINTS_DIR
    # The newest checkpoint that loads (a truncated last.ckpt falls back, with a warning);
    # none: interrupted before the first checkpoint, start over.
    resume_from = intact_checkpoint(checkpoints) if plain["resume"] else None
    trainer = L.Trainer(
        **trainer_cfg,
        default_root_dir=str(run_dir),
        plugins=[AtomicCheckpointIO()],
        logger=build_loggers(
            plain.get("loggers", ["csv", "tensorboard"]),
            run_dir,
            MlflowConfig(**plain.get("mlflow", {})),
            params=_flatten(plain),
        ),
        callbacks=[*training_callbacks(options, checkpoints), FiniteGuard(), RNGStateCheckpoint()],
        enable_model_summary=not quiet,
        num_sanity_val_steps=0,
    )
    train_loader = make_loader(
        seen["pretrain"], batch_size, shuffle=True, drop_last=True, seed=seed
    )
    val_loader = make_loader(seen["val"], batch_size)
    start = time.perf_counter()
    try:
        trainer.fit(method, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    except NonFiniteError as error:
        last = checkpoints / "last.ckpt"
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint yet"
        message = (
            f"{error} Training stopped; {kept}. Lower method.lr, set "
            "trainer.gradient_clip_val, or check the data for NaN/Inf values."
        )
        write_failure(run_dir, message)
        raise TrainingError(message) from None
    except SystemExit as error:
        # Lightning turns SIGTERM into SIGTERMException (a SystemExit with status 0) and Ctrl+C
        # (SIGINT) into sys.exit(1) after a graceful shutdown: neither may pass as a success.
        number = signal.SIGTERM if isinstance(error, SIGTERMException) else signal.SIGINT
        last = checkpoints / "last.ckpt"
        kept = f"the last checkpoint is {last}" if last.exists() else "no checkpoint yet"
        message = (
            f"The run was interrupted by {signal.Signals(number).name}; {kept}. Continue it "
            f"with the same command plus run_name={run_dir.name} resume=true."
        )
        write_failure(run_dir, message)
        raise RunInterrupted(message, int(number)) from None
    return trainer, time.perf_counter() - start


def training_key(cfg: Mapping[str, Any]) -> str:
    """Hash of what a run's *training* computes: runs with one key train the same model.

    The run's identity (:func:`run_id`) without the scenarios that cannot reach training —
    those applied only to the probes' data and the test split (``stage`` within
    ``[downstream, test]``), those whose parameters change no data
    (:meth:`~modalab.scenarios.base.Scenario.unchanged_by`: label noise at rate 0), and
    those that change only labels (``label_noise``, ``label_scarcity``) when the method's
    training reads no label (:data:`~modalab.methods.registry.LABEL_FREE_METHODS`) — without
    the evaluation settings other than ``eval.checkpoint`` (which weights are kept) and
    without the labels of a study's grid point. The severities of a test-time obstacle share
    a key; those of a training-time one, or two seeds, do not. Training sees the ``pretrain``
    and ``val`` stages only, and the runner reseeds after applying the scenarios, so a
    scenario left out here changes no trained weight.

    Example:
        >>> base = {"seed": 0, "eval": {"checkpoint": "best", "l2_grid": [0.1]},
        ...         "scenario": {"missing": {"rate": 0.5, "stage": ["test"]}}}
        >>> at_one = {**base, "scenario": {"missing": {"rate": 1.0, "stage": ["test"]}}}
        >>> training_key(base) == training_key(at_one)
        True
        >>> in_training = {**base, "scenario": {"missing": {"rate": 1.0, "stage": ["pretrain"]}}}
        >>> training_key(base) == training_key(in_training)
        False
        >>> noisy = {"seed": 0, "scenario": {"label_noise": {"rate": 0.4, "stage": ["pretrain"]}}}
        >>> clean = {"seed": 0, "scenario": {"label_noise": {"rate": 0.0, "stage": ["pretrain"]}}}
        >>> clip, supervised = {"method": {"name": "clip"}}, {"method": {"name": "supervised"}}
        >>> training_key({**noisy, **clip}) == training_key({**clean, **clip})
        True
        >>> training_key({**noisy, **supervised}) == training_key({**clean, **supervised})
        False
        >>> training_key({**clean, **supervised}) == training_key({"seed": 0, **supervised})
        True
    """
    method = str((cfg.get("method") or {}).get("name", ""))

    def reaches_training(name: str, scenario: Any) -> bool:
        if not isinstance(scenario, Mapping):
            return True
        stage = set(scenario.get("stage") or [])
        if stage and stage <= {"downstream", "test"}:
            return False
        if name not in SCENARIOS:
            return True
        kind = SCENARIOS.get(name)
        if kind.unchanged_by(scenario):  # e.g. label noise at rate 0, whatever its mode
            return False
        return not (kind.labels_only and method in LABEL_FREE_METHODS)

    scenarios = {
        name: scenario
        for name, scenario in (cfg.get("scenario") or {}).items()
        if reaches_training(name, scenario)
    }
    identity = _identity(
        {**cfg, "scenario": scenarios},
        drop=("eval", "severity_key", "scenario_label"),
    )
    identity["eval.checkpoint"] = (cfg.get("eval") or {}).get("checkpoint", "best")
    return _digest(identity)


def _sharing(
    plain: Mapping[str, Any], options: TrainingOptions, processes: int
) -> SharedTraining | None:
    """The shared-training registry of a run, or ``None`` (sharing off, several processes)."""
    trainer = plain.get("trainer") or {}
    if not options.share_training or processes > 1 or int(trainer.get("num_nodes", 1)) > 1:
        return None
    folder = Path(str(plain.get("output_dir") or "runs")) / SHARED_DIR
    # The software is part of the key: weights trained by other code are not reused.
    return SharedTraining(folder, _digest({"training": training_key(plain), **_versions()}))


def _store_rows(result: RunResult) -> list[dict[str, Any]]:
    """One results-store row per metric record of a run."""
    return result_rows(result.config, result.metrics)


def result_rows(
    cfg: Mapping[str, Any],
    metrics: Sequence[MetricRecord],
    versions: Mapping[str, str] | None = None,
    timestamp: str | None = None,
) -> list[dict[str, Any]]:
    """The results-store rows (:data:`~modalab.experiments.store.COLUMNS`) of a run's metrics.

    Args:
        cfg: The run's resolved config.
        metrics: Its metric records.
        versions: Library versions and git revision (default: this process's).
        timestamp: ISO time of the results (default: now).
    """
    key, severity = _severity(cfg)
    versions = dict(versions) if versions is not None else _versions()
    common = {
        "run_id": run_id(cfg),
        "study": str(cfg.get("study") or ""),
        "config_hash": config_hash(cfg),
        "method": cfg.get("method_label") or cfg["method"]["name"],
        "data": cfg.get("data_label") or cfg["data"]["name"],
        "scenario": cfg.get("scenario_label") or "+".join(cfg.get("scenario") or {}) or "none",
        "severity": severity,
        "severity_key": key,
        "seed": int(cfg["seed"]),
        "git_revision": str(versions.get("git_revision", "")),
        "versions": json.dumps(versions, sort_keys=True),
        "timestamp": timestamp or datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }
    return [
        {
            **common,
            "metric": r.metric,
            "modality": r.modality,
            "condition": r.condition,
            "value": float(r.value),
        }
        for r in metrics
    ]


def _write_metrics(result: RunResult) -> None:
    cfg = result.config
    payload = {
        "data": cfg["data"]["name"],
        "method": cfg["method"]["name"],
        "seed": cfg["seed"],
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "training": result.training,
        "versions": _versions(),
        "metrics": [dataclasses.asdict(r) for r in result.metrics],
        **result.data_info,  # skipped files (names, errors) and removed duplicates
    }
    table = result.table()
    table.insert(0, "method", cfg["method"]["name"])
    table.insert(0, "data", cfg["data"]["name"])
    table.insert(2, "seed", cfg["seed"])
    atomic_write_text(result.run_dir / METRICS_CSV_FILE, table.to_csv(index=False))
    # metrics.json last: its presence marks a finished run.
    atomic_write_text(result.run_dir / METRICS_FILE, json.dumps(payload, indent=2))
