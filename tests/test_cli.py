import json
from pathlib import Path

import pandas as pd
import pytest

from modalab.cli.main import _expand_overrides, main
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import run

TINY = [
    "data.n_samples=500",
    "trainer.max_epochs=2",
    "trainer.batch_size=64",
    "trainer.enable_progress_bar=false",
    "eval.l2_grid=[0.01]",
]


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "list" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "method=clip,supervised" in capsys.readouterr().out


def test_config_errors_name_the_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "data.n_sampls=3"]) == 2
    assert "Key 'n_sampls' not in 'ShapesDataConfig'" in capsys.readouterr().err
    assert main(["run", "method=simclrr"]) == 2
    err = capsys.readouterr().err
    assert "Could not find 'method/simclrr'" in err and "clip" in err and "supervised" in err
    assert main(["run", "trainer.max_epochs=many"]) == 2
    assert "could not be converted to Integer" in capsys.readouterr().err
    assert main(["run", "data.label_rule=xor"]) == 2
    assert "label_rule='xor' is unknown" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"model\.encoders names modalities"):
        run(compose_config(["+model.encoders.video=cnn2d", *TINY]))


def test_sweep_overrides_expand() -> None:
    runs = _expand_overrides(["method=clip,supervised", "seed=0,1", "trainer.max_epochs=2"])
    assert len(runs) == 4
    assert ["method=supervised", "seed=1", "trainer.max_epochs=2"] in runs


@pytest.mark.slow
def test_run_end_to_end_writes_run_dir_and_is_deterministic(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", "--quiet", *TINY, f"output_dir={tmp_path}"]
    assert main([*args, "run_name=a"]) == 0
    out = capsys.readouterr().out
    assert "linear_probe_acc" in out and "R@1" in out and "image->text" in out
    assert main([*args, "run_name=b"]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    for name in (
        "config.yaml",
        "metrics.json",
        "metrics.csv",
        "checkpoints/last.ckpt",
        "logs/metrics.csv",
    ):
        assert (a / name).exists(), name
    assert list((a / "tensorboard").glob("events.*"))
    ma = json.loads((a / "metrics.json").read_text())["metrics"]
    mb = json.loads((b / "metrics.json").read_text())["metrics"]
    assert ma == mb  # same config + seed → identical metrics
    versions = json.loads((a / "metrics.json").read_text())["versions"]
    assert {"torch", "lightning", "modalab", "git_revision"} <= set(versions)
    table = pd.read_csv(a / "metrics.csv")
    assert set(table.columns) >= {
        "data",
        "method",
        "seed",
        "metric",
        "value",
        "modality",
        "condition",
    }
    assert {"image", "text", "audio", "fused"} <= set(table.modality)
    # A finished run directory is never overwritten.
    assert main([*args, "run_name=a"]) == 2
    assert "already holds finished results" in capsys.readouterr().err


@pytest.mark.slow
def test_clip_and_supervised_learn_far_above_chance(tmp_path: Path) -> None:
    common = [
        "data.n_samples=1500",
        "trainer.max_epochs=8",
        "trainer.batch_size=64",
        "trainer.enable_progress_bar=false",
        "eval.l2_grid=[0.01]",
        f"output_dir={tmp_path}",
    ]
    clip = run(compose_config(["method=clip", "run_name=clip", *common]), quiet=True)
    sup = run(compose_config(["method=supervised", "run_name=sup", *common]), quiet=True)
    chance = 0.25
    assert clip.value("linear_probe_acc", "fused", "labels=1") > chance + 0.4
    assert sup.value("linear_probe_acc", "fused", "labels=1") > chance + 0.4
    # CLIP learns a joint space: retrieval beats the random-ranking rate 10 / N.
    n_test = 375
    assert clip.value("recall@10", "image->text") > 3 * 10 / n_test
