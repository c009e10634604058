"""Sweeps: grid expansion, run ids, resume after interruption, the runner's use of stages."""

from __future__ import annotations

import math
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from modalab.cli.main import main
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import run
from modalab.experiments.store import ResultsStore
from modalab.experiments.sweep import (
    expand_study,
    hydra_commands,
    load_study,
    run_sweep,
    seed_major,
)

TINY = [
    "data.n_samples=120",
    "trainer.max_epochs=1",
    "trainer.batch_size=32",
    "model.embed_dim=16",
    "eval.l2_grid=[0.01]",
    "eval.retrieval_ks=[1]",
]


def _study(tmp_path: Path, seeds: str = "[0]", values: str = "[0.0, 1.0]") -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(
        f"""
name: tiny
store: {tmp_path}/store
output_dir: {tmp_path}/runs
overrides: {TINY}
methods:
  supervised: []
  clip_t01: [method=clip, method.temperature=0.1]
scenarios:
  audio_missing:
    overrides: ["scenario=[missing]", "scenario.missing.modalities=[audio]",
                "scenario.missing.stage=[test]"]
    severity: scenario.missing.rate
    values: {values}
seeds: {seeds}
smoke: {{overrides: [data.n_samples=100], seeds: [5], levels: 1}}
"""
    )
    return path


def test_expand_grid_ids_and_smoke(tmp_path: Path) -> None:
    spec = load_study(_study(tmp_path, seeds="[0, 1]", values="[0.0, 0.5, 1.0]"))
    runs, store = expand_study(spec)
    assert len(runs) == 2 * 3 * 2 and store == f"{tmp_path}/store"
    assert len({r.run_id for r in runs}) == len(runs)
    again, _ = expand_study(load_study(_study(tmp_path, seeds="[0, 1]", values="[0.0, 0.5, 1.0]")))
    assert [r.run_id for r in again] == [r.run_id for r in runs]  # stable: resumable
    clip = next(r for r in runs if r.method == "clip_t01")
    cfg = compose_config(clip.overrides)
    assert cfg.method.name == "clip" and cfg.method.temperature == 0.1
    smoke, smoke_store = expand_study(spec, smoke=True)
    assert len(smoke) == 2 and smoke_store.endswith("_smoke")
    assert {r.seed for r in smoke} == {5} and {r.severity for r in smoke} == {0.0}
    commands = hydra_commands(runs)
    assert len(commands) == 2
    assert "scenario.missing.rate=0.0,0.5,1.0" in commands[0] and "seed=0,1" in commands[0]
    assert "hydra/launcher=submitit_slurm" in commands[0]


def test_run_ids_reach_the_run_directory_verbatim(tmp_path: Path) -> None:
    # 4305622474e33403 read unquoted is the float 4.3e33412 = inf: two such runs would share
    # the directory runs/inf. The sweep quotes the id.
    (run,) = expand_study(load_study(_study(tmp_path, values="[0.0]")))[0][:1]
    assert f"run_name='{run.run_id}'" in run.overrides
    cfg = compose_config([*TINY, "run_name='4305622474e33403'"])
    assert cfg.run_name == "4305622474e33403"


def test_study_file_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmethod: {clip: []}\n")
    with pytest.raises(ConfigError, match="method"):
        load_study(bad)
    path = _study(tmp_path)
    path.write_text(path.read_text().replace("scenario.missing.rate", "scenario.missing.rat"))
    with pytest.raises(ConfigError, match="rat"):
        expand_study(load_study(path))


@pytest.mark.slow
def test_sweep_runs_resumes_and_records_rows(tmp_path: Path) -> None:
    spec = load_study(_study(tmp_path))
    runs, store = expand_study(spec)
    sup = [r for r in runs if r.method == "supervised"]
    lines: list[str] = []
    first = run_sweep(sup, store, jobs=1, progress=lines.append)
    assert (first.done, first.skipped, first.failed) == (2, 0, [])
    assert lines[-1].startswith("[2/2] done")
    frame = ResultsStore(store).read()
    assert set(frame["run_id"]) == {r.run_id for r in sup}
    assert sorted(set(frame["severity"])) == [0.0, 1.0]
    assert set(frame["severity_key"]) == {"scenario.missing.rate"}
    assert set(frame["study"]) == {"tiny"} and set(frame["scenario"]) == {"audio_missing"}
    assert frame["config_hash"].nunique() == 2  # severities differ, seeds would not
    # whole-modality absence at test: no audio probe, audio probed when present
    at_one = frame[frame.severity == 1.0]
    assert not ((at_one.metric == "linear_probe_acc") & (at_one.modality == "audio")).any()
    at_zero = frame[frame.severity == 0.0]
    assert ((at_zero.metric == "linear_probe_acc") & (at_zero.modality == "audio")).any()
    assert {"effective_rank", "uniformity"} <= set(frame.metric)
    # supervised fusion trains no joint space: no alignment, gap or retrieval rows
    assert not ({"alignment", "modality_gap", "recall@1"} & set(frame.metric))
    # an interrupted sweep: a run killed before it finished left neither rows nor
    # metrics.json (only a partial run directory); the rerun redoes only that one
    ResultsStore(store).path(sup[1].run_id).unlink()
    (tmp_path / "runs" / sup[1].run_id / "metrics.json").unlink()
    again = run_sweep(runs, store, jobs=2, progress=lines.append)
    assert (again.skipped, again.done, again.failed) == (1, 3, [])
    assert ResultsStore(store).run_ids() == {r.run_id for r in runs}


@pytest.mark.slow
def test_runner_applies_pretrain_scenarios_only_to_pretraining(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            *TINY,
            "method=supervised",
            "scenario=[missing]",
            "scenario.missing.rate=1.0",
            "scenario.missing.modalities=[audio]",
            "scenario.missing.stage=[pretrain]",
            f"output_dir={tmp_path}",
            f"store={tmp_path}/store",
        ]
    )
    result = run(cfg, quiet=True)
    # the audio encoder never saw audio, but the probe and test data have it
    assert any(r.modality == "audio" and r.metric == "knn_acc" for r in result.metrics)
    with pytest.raises(ConfigError, match="already holds"):
        run(cfg, quiet=True)


def test_cli_sweep_dry_run_and_bad_severity_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", str(_study(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("todo") == 4
    with pytest.raises(ConfigError, match="severity_key"):
        run(compose_config([*TINY, "severity_key=data.name", f"output_dir={tmp_path}"]))


def test_sweep_runs_seed_by_seed_unless_asked_for_the_grid_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modalab.experiments.sweep as sweep

    runs, store = expand_study(load_study(_study(tmp_path, seeds="[0, 1]", values="[0.0, 1.0]")))
    assert [(r.method, r.severity) for r in runs][:4] == [("supervised", 0.0)] * 2 + [
        ("supervised", 1.0)
    ] * 2
    started: list[tuple[str, float, int]] = []
    by_id = {r.run_id: r for r in runs}

    def execute(overrides: list[str], store: str = "", run_id: str = "") -> float:
        run = by_id[run_id]
        started.append((run.method, run.severity, run.seed))
        return 1.0

    monkeypatch.setattr(sweep, "_execute", execute)
    run_sweep(runs, store, progress=lambda line: None, jobs=1)
    # Seed by seed; within a seed, every method's first severity before any second one.
    assert started == [
        (method, severity, seed)
        for seed in (0, 1)
        for severity in (0.0, 1.0)
        for method in ("supervised", "clip_t01")
    ]
    started.clear()
    run_sweep(runs, store, progress=lambda line: None, order="grid", jobs=1)
    assert started == [(r.method, r.severity, r.seed) for r in runs]


def test_cli_sweep_override_reaches_every_run_and_its_identity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = str(_study(tmp_path))
    assert main(["sweep", study, "--dry-run"]) == 0
    plain = {line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert main(["sweep", study, "--dry-run", "--override", "trainer.deterministic=warn"]) == 0
    changed = {line.split()[1] for line in capsys.readouterr().out.splitlines()}
    assert len(changed) == len(plain) == 4 and not changed & plain  # new ids: part of identity
    # The ids are those of the grid with the override in the study file itself.
    text = (
        Path(study)
        .read_text()
        .replace(f"overrides: {TINY}", f"overrides: {[*TINY, 'trainer.deterministic=warn']}")
    )
    (tmp_path / "with.yaml").write_text(text)
    runs, _ = expand_study(load_study(tmp_path / "with.yaml"))
    assert {r.run_id for r in runs} == changed
    assert main(["sweep", study, "--override", "trainer.deterministic"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().out
    bad = ["sweep", study, "--dry-run", "--override", "trainer.deterministic=always"]
    assert main(bad) == 2
    assert "trainer.deterministic='always'" in capsys.readouterr().err


@pytest.mark.slow
def test_hydra_multirun_route_matches_the_sweep_and_skips_finished_runs(tmp_path: Path) -> None:
    spec = load_study(_study(tmp_path, values="[0.0]"))
    runs, store = expand_study(spec)
    sup = [r for r in runs if r.method == "supervised"]
    (command,) = [c for c in hydra_commands(runs, launcher="basic") if "method=supervised" in c]
    command = command.replace("python", shlex.quote(sys.executable), 1)
    command += f" hydra.sweep.dir={tmp_path}/multirun"
    first = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "done: run" in first.stdout
    assert ResultsStore(store).run_ids() == {sup[0].run_id}  # same id as `modalab sweep`
    second = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300)
    assert "skipped: run" in second.stdout


STUDIES = sorted((Path(__file__).parents[1] / "studies").glob("*.yaml"))
OBSTACLES = {
    "missing_modality",
    "noisy_modality",
    "unbalanced_modalities",
    "misaligned_pairs",
    "label_scarcity",
    "label_noise",
}


@pytest.mark.slow  # the fast tier is at its 3-minute budget
def test_a_method_restricted_to_some_scenarios_runs_only_under_them(tmp_path: Path) -> None:
    path = _study(tmp_path, values="[0.0, 1.0]")
    control = """  image_only:
    overrides: [method=supervised, "data.modalities=[image]"]
    scenarios: [image_noise]
scenarios:
  image_noise:
    overrides: ["scenario=[gaussian_noise]", "scenario.gaussian_noise.modalities=[image]"]
    severity: scenario.gaussian_noise.snr_db
    values: [30.0, 5.0]
"""
    text = path.read_text().replace("scenarios:\n", control)
    path.write_text(text)
    spec = load_study(path)
    assert spec.methods["image_only"] == ["method=supervised", "data.modalities=[image]"]
    assert spec.method_scenarios == {"image_only": ["image_noise"]}
    runs, _ = expand_study(spec)
    # 3 methods x 2 scenarios, less the control under audio_missing (its data has no audio).
    every = {(m, s) for m in ("supervised", "clip_t01", "image_only") for s in spec.scenarios}
    assert {(r.method, r.scenario) for r in runs} == every - {("image_only", "audio_missing")}
    assert len(runs) == 5 * 2  # each pair at 2 severities, 1 seed
    # A scenario the study does not have, and a malformed entry, are errors naming the method.
    for old, new in (
        ("[image_noise]\nscen", "[img_noise]\nscen"),
        ("    scenarios: [", "    x: ["),
    ):
        path.write_text(text.replace(old, new))
        with pytest.raises(ConfigError, match="image_only"):
            load_study(path)


def test_every_obstacle_has_a_study_with_clip_supervised_and_three_seeds() -> None:
    assert OBSTACLES <= {p.stem for p in STUDIES}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_files_compose(path: Path) -> None:
    spec = load_study(path)
    assert len(spec.seeds) >= 3
    if path.stem in OBSTACLES:
        assert {"clip", "supervised"} <= set(spec.methods)
    runs, store = expand_study(spec, smoke=True)
    assert store.endswith("_smoke")
    n_datasets = max(len(spec.datasets), 1)
    points = sum(  # methods restricted to some scenarios run only under those
        1 if method in spec.reference_methods else min(spec.smoke.levels, len(s.values))
        for method in spec.methods
        for label, s in spec.scenarios.items()
        if label in spec.method_scenarios.get(method, [label])
    )
    assert len(runs) == n_datasets * points * len(spec.smoke.seeds)


@pytest.mark.slow  # composes a grid (~4-8 s): room in the fast tier for the tests of this change
def test_seed_data_ties_data_seed_to_the_seed(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import config_hash

    path = _study(tmp_path, seeds="[0, 1, 2]")
    path.write_text(path.read_text() + "seed_data: true\n")
    runs, _ = expand_study(load_study(path))
    hashes: dict[str, set[str]] = {}
    for point in runs:
        cfg = OmegaConf.to_container(compose_config(point.overrides[:-2]), resolve=True)
        assert cfg["data"]["seed"] == point.seed == cfg["seed"]
        if point.severity == 0.0:
            hashes.setdefault(point.method, set()).add(config_hash(cfg))
    assert [len(h) for h in hashes.values()] == [1, 1]  # seeds of a config share its hash
    (tmp_path / "b").mkdir()
    plain, _ = expand_study(load_study(_study(tmp_path / "b", seeds="[0, 1, 2]")))
    seeds = {
        OmegaConf.to_container(compose_config(r.overrides[:-2]), resolve=True)["data"]["seed"]
        for r in plain
    }
    assert seeds == {0}


def test_study_files_use_five_seeds_and_seed_data() -> None:
    for path in sorted((Path(__file__).parents[1] / "studies").glob("*.yaml")):
        spec = load_study(path)
        assert len(spec.seeds) >= 5 and spec.seed_data, path.name


def test_a_reference_run_records_no_severity_even_with_a_scenario_of_its_own(
    tmp_path: Path,
) -> None:
    """A unimodal control made by a `missing` scenario at every stage, as a reference row."""
    from modalab.experiments.runner import _severity

    own = {"scenario": {"missing": {"rate": 1.0, "modalities": ["audio"]}}, "seed": 0}
    assert _severity({**own, "severity_key": ""}) == ("scenario.missing.rate", 1.0)
    key, value = _severity({**own, "severity_key": "none"})
    assert key == "" and math.isnan(value)
    path = _study(tmp_path, values="[0.0, 1.0]")
    control = """  image_only:
    overrides: [method=supervised, "scenario=[missing]", "scenario.missing.modalities=[audio]"]
    reference: true
scenarios:
"""
    path.write_text(path.read_text().replace("scenarios:\n", control))
    runs, _ = expand_study(load_study(path))
    (reference,) = [r for r in runs if r.method == "image_only"]
    assert "severity_key=none" in reference.overrides and math.isnan(reference.severity)
    # A reference without a scenario of its own keeps the empty key (and so the run ids of
    # the stores' existing reference runs: severity_key is part of a run's identity).
    plain = control.replace(
        '"scenario=[missing]", "scenario.missing.modalities=[audio]"', '"data.modalities=[image]"'
    )
    path.write_text(path.read_text().replace(control, plain))
    runs, _ = expand_study(load_study(path))
    (reference,) = [r for r in runs if r.method == "image_only"]
    assert "severity_key=" in reference.overrides


@pytest.mark.slow  # runs a tiny sweep: the fast tier is at its 3-minute budget
def test_a_reference_method_runs_once_per_seed_and_shows_flat_at_every_severity(
    tmp_path: Path,
) -> None:
    from modalab.experiments.tables import study_tables

    path = _study(tmp_path, values="[0.0, 0.5, 1.0]")
    reference = """  no_audio:
    overrides: [method=supervised, "data.modalities=[image,text]"]
    reference: true
scenarios:
"""
    text = path.read_text().replace("scenarios:\n", reference)
    text += "tables:\n  - {kind: curve, modalities: [fused], baseline: supervised}\n"
    path.write_text(text.replace("seeds: [0]", "seeds: [0, 1]"))
    spec = load_study(path)
    assert spec.reference_methods == ["no_audio"]
    runs, store = expand_study(spec)
    controls = [r for r in runs if r.method == "no_audio"]
    assert len(runs) == 2 * 3 * 2 + 2 and len(controls) == 2  # once per seed, no severity
    assert all("reference" in r.label for r in controls)
    assert not any(o.startswith(("scenario=", "scenario.")) for r in controls for o in r.overrides)
    plain = [r for r in runs if r.method == "supervised" and r.seed == 0 and r.severity != 0.5]
    summary = run_sweep([*controls, *plain], store, jobs=1)
    assert summary.failed == []
    frame = ResultsStore(store).read()
    rows = frame[frame.method == "no_audio"]
    assert rows.severity.isna().all() and set(rows.scenario) == {"audio_missing"}
    assert set(rows.severity_key) == {""}
    # The table shows the control's per-seed mean at every severity the other runs have.
    probe = rows[(rows.metric == "linear_probe_acc") & (rows.modality == "fused")]
    probe = probe[probe.condition == "labels=1"]
    expected = f"{probe.value.mean():.3f} ± {probe.value.std():.3f}"
    table = study_tables(path)
    line = next(x for x in table.splitlines() if x.startswith("| no_audio (n=2)"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1].startswith(expected) and cells[2].startswith(expected)  # severities 0, 1
    # The Hydra route runs a reference once per seed too: no severity to sweep.
    (command,) = [c for c in hydra_commands(runs) if "method_label=no_audio" in c]
    assert "nan" not in command and "seed=0,1" in command and "scenario=" not in command
    # A reference flag that is not a boolean is an error naming the method.
    path.write_text(text.replace("reference: true", "reference: sometimes"))
    with pytest.raises(ConfigError, match="no_audio"):
        load_study(path)


@pytest.mark.slow  # composes the 32 runs of a smoke grid
def test_runs_sharing_a_training_start_after_every_first_training_of_their_seed() -> None:
    """label_noise: rate 0 of both modes shares one training, and CLIP's severities share
    one: within a seed, each shared run starts after every run that trains."""
    study = Path(__file__).parents[1] / "studies" / "label_noise.yaml"
    runs, _ = expand_study(load_study(study), smoke=True)
    assert len({r.training for r in runs}) < len(runs)  # there is sharing to order
    ordered = seed_major(runs)
    for seed in {r.seed for r in runs}:
        mine = [r for r in ordered if r.seed == seed]
        seen: set[str] = set()
        first = [r.training not in seen and not seen.add(r.training) for r in mine]
        assert first == sorted(first, reverse=True), [r.label for r in mine]
        assert sum(first) == len({r.training for r in mine})
