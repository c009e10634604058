"""Training shared by runs that differ only at test time: same weights, same results as
training again, and no sharing where the obstacle acts on training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from safetensors.torch import load_file

from _tiny import TINY_SHAPES
from modalab.experiments.config import compose_config
from modalab.experiments.runner import run, training_key

TINY = [
    *TINY_SHAPES,
    "trainer.max_epochs=2",
    "method=clip",
    "scenario=[missing]",
    "scenario.missing.modalities=[image]",
]


def _run(tmp_path: Path, folder: str, *overrides: str):  # type: ignore[no-untyped-def]
    return run(compose_config([*TINY, f"output_dir={tmp_path / folder}", *overrides]), True)


def _record(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads((result.run_dir / "metrics.json").read_text())


def _weights(result) -> dict:  # type: ignore[no-untyped-def]
    return load_file(str(result.run_dir / "model.safetensors"))


@pytest.mark.slow  # trains tiny models: the fast tier is at its 3-minute budget
def test_test_time_severities_share_one_training_equal_to_training_again(
    tmp_path: Path,
) -> None:
    test_only = "scenario.missing.stage=[test]"
    first = _run(tmp_path, "runs", test_only, "scenario.missing.rate=0.0")
    second = _run(tmp_path, "runs", test_only, "scenario.missing.rate=1.0")
    assert "shared_from" not in _record(first)["training"]
    shared = _record(second)
    assert shared["training"]["shared_from"] == first.run_dir.name
    assert shared["train_seconds"] == 0.0
    assert shared["training"]["epochs_trained"] == _record(first)["training"]["epochs_trained"]
    a, b = _weights(first), _weights(second)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    # The same run trained on its own (sharing off, another folder): identical results.
    alone = _run(
        tmp_path, "alone", test_only, "scenario.missing.rate=1.0", "trainer.share_training=false"
    )
    assert "shared_from" not in _record(alone)["training"]
    c = _weights(alone)
    assert all((b[k] == c[k]).all() for k in b)
    got = {(r.metric, r.modality, r.condition): r.value for r in second.metrics}
    want = {(r.metric, r.modality, r.condition): r.value for r in alone.metrics}
    assert got.keys() == want.keys() and got == pytest.approx(want, abs=1e-6, nan_ok=True)
    # The first configuration run again (another run_name, same run id) is a rerun: it trains.
    again = _run(tmp_path, "runs", test_only, "scenario.missing.rate=0.0", "run_name=again")
    assert "shared_from" not in _record(again)["training"]
    # The same obstacle in training is another model: no sharing.
    in_training = _run(tmp_path, "runs", "scenario.missing.stage=[pretrain]")
    assert "shared_from" not in _record(in_training)["training"]
    # A registered run whose directory was deleted: the next run of the key trains again.
    entries = [json.loads(p.read_text()) for p in (tmp_path / "runs" / ".shared").glob("*.json")]
    registered = {e["run_dir"] for e in entries}  # the rerun registered itself last
    assert str(again.run_dir.resolve()) in registered
    assert str(first.run_dir.resolve()) not in registered
    shutil.rmtree(again.run_dir)
    third = _run(tmp_path, "runs", test_only, "scenario.missing.rate=0.5")
    assert "shared_from" not in _record(third)["training"]


@pytest.mark.slow  # trains tiny models: the fast tier is at its 3-minute budget
def test_clip_shares_its_training_across_label_noise_and_its_probes_see_the_noise(
    tmp_path: Path,
) -> None:
    def noisy(rate: float):  # type: ignore[no-untyped-def]
        overrides = [
            *TINY_SHAPES,
            "trainer.max_epochs=2",
            "method=clip",
            "scenario=[label_noise]",
            f"scenario.label_noise.rate={rate}",
            f"output_dir={tmp_path}",
        ]
        return run(compose_config(overrides), True)

    clean, wrong = noisy(0.0), noisy(0.6)
    assert _record(wrong)["training"]["shared_from"] == clean.run_dir.name
    a, b = _weights(clean), _weights(wrong)
    assert all((a[k] == b[k]).all() for k in a)
    # The probes are fitted after training, on the run's own (noisy) labels.
    probe = [("linear_probe_acc", "fused", "labels=1")]
    values = [
        {(r.metric, r.modality, r.condition): r.value for r in x.metrics} for x in (clean, wrong)
    ]
    assert values[0][probe[0]] != values[1][probe[0]]


def _key(*overrides: str) -> str:
    cfg = compose_config([*TINY, "scenario.missing.stage=[test]", *overrides])
    return training_key(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]


@pytest.mark.slow  # composes 15 configs: the fast tier is at its budget
def test_the_training_key_ignores_only_what_training_does_not_see() -> None:
    key = _key()
    same = [
        "scenario.missing.rate=0.9",  # a test-time severity
        "eval.l2_grid=[0.1]",  # probe settings
        "severity_key=scenario.missing.rate",
        "scenario_label=x",
        "trainer.threads=1",  # how fast, not what
        "scenario.missing.stage=[test,downstream]",  # the probes' data: fitted after training
    ]
    for override in same:
        assert _key(override) == key, override
    # Labels reach neither CLIP's loss nor its early stopping: a label scenario on its
    # training data leaves CLIP's training as it is, and changes a supervised model's.
    labels = ["scenario=[missing,label_noise]", "scenario.missing.stage=[test]"]
    assert _key(*labels, "scenario.label_noise.rate=0.4") == _key(*labels)
    supervised = [*labels, "method=supervised"]
    assert _key(*supervised, "scenario.label_noise.rate=0.4") != _key(*supervised)
    # No label flipped (rate 0, the default): the data without the scenario, whatever the mode.
    asymmetric = _key(*supervised, "scenario.label_noise.mode=asymmetric")
    assert _key(*supervised) == asymmetric == _key("method=supervised")
    other = [
        "scenario.missing.stage=[test,val]",  # validation selects the checkpoint
        "seed=1",
        "trainer.max_epochs=3",
        "eval.checkpoint=last",  # other weights are kept
        "method.temperature=0.2",
    ]
    for override in other:
        assert _key(override) != key, override
