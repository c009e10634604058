"""A finished run read back from its directory: the weights the run evaluated, bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

from modalab.experiments import rundir
from modalab.experiments.build import build_data
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import run

pytestmark = pytest.mark.slow

TINY = [
    "data.n_samples=160",
    "data.image_size=16",
    "data.audio_length=256",
    "trainer.max_epochs=1",
    "trainer.batch_size=32",
    "model.embed_dim=8",
    "eval.knn_k=3",
    "eval.l2_grid=[0.01]",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny CLIP run and the embeddings its method computed in memory at the end of training.

    The runner's ``save_weights`` is wrapped: when the run writes the evaluated weights, the
    live method embeds a fixed test batch, independently of anything read back from disk.
    """
    out = tmp_path_factory.mktemp("runs")
    cfg = compose_config([*TINY, "method=clip", f"output_dir={out}", "run_name=clip"])
    batch = build_data(dict(cfg.data)).test.__getitems__(list(range(24)))
    seen: dict[str, Any] = {}
    original = rundir.save_weights

    def spy(model: nn.Module, run_dir: Path, config_yaml: str) -> Path:
        model.eval()  # as the runner evaluates it, right after writing the weights
        with torch.no_grad():
            seen["embeddings"] = {
                m: e.clone() for m, e in model.encoder(dict(batch.inputs)).items()
            }
        return original(model, run_dir, config_yaml)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("modalab.experiments.runner.save_weights", spy)
        result = run(cfg, quiet=True)
    return {"run_dir": result.run_dir, "batch": batch, **seen}


def test_load_encoder_reproduces_the_train_time_embeddings(trained: dict[str, Any]) -> None:
    inputs = dict(trained["batch"].inputs)
    encoder = rundir.load_encoder(trained["run_dir"])
    assert not encoder.training
    with torch.no_grad():
        again = encoder(inputs)
    assert set(again) == set(trained["embeddings"]) == {"image", "text", "audio"}
    for modality, expected in trained["embeddings"].items():
        assert torch.equal(again[modality], expected), modality
        one = rundir.load_encoder(trained["run_dir"], modality)
        with torch.no_grad():
            assert torch.equal(one(inputs[modality]), expected)


def test_load_run_from_the_evaluated_checkpoint_equals_the_safetensors(
    trained: dict[str, Any],
) -> None:
    run_dir = trained["run_dir"]
    checkpoint = rundir.evaluated_checkpoint(run_dir)
    assert checkpoint.startswith(f"{rundir.CHECKPOINTS_DIR}/") and checkpoint.endswith(".ckpt")
    from_ckpt = rundir.load_run(run_dir, checkpoint=checkpoint)
    default = rundir.load_run(run_dir)
    assert default.embed_dim == 8 and default.config["method"]["name"] == "clip"
    assert len(default.splits.test) == len(from_ckpt.splits.test)
    torch.testing.assert_close(
        default.method.state_dict(), from_ckpt.method.state_dict(), rtol=0, atol=0
    )


def test_load_run_refuses_what_is_not_a_finished_run(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"config\.yaml"):
        rundir.load_run(tmp_path)
    (tmp_path / rundir.CONFIG_FILE).write_text((trained["run_dir"] / "config.yaml").read_text())
    with pytest.raises(ConfigError, match="it needs the checkpoint"):
        rundir.load_run(tmp_path)  # no model.safetensors and no checkpoint
    with pytest.raises(ConfigError, match="no 'depth' encoder"):
        rundir.load_encoder(trained["run_dir"], "depth")
    with pytest.raises(ConfigError, match=r"method\.teacher_run=.*no 'depth' encoder"):
        rundir.load_teacher(str(trained["run_dir"]), "depth")


def test_load_teacher_does_not_reseed(trained: dict[str, Any]) -> None:
    """Loaded inside a student's build, a teacher must not set the student's random state."""
    after = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        _, dim = rundir.load_teacher(str(trained["run_dir"]), "image")
        after.append(torch.rand(3))
    assert dim == 8
    assert not torch.equal(after[0], after[1])  # equal if loading reseeded with the run's seed


def test_distill_from_a_teacher_run_trains_and_keeps_the_teacher(
    trained: dict[str, Any], tmp_path: Path
) -> None:
    teacher_dir = trained["run_dir"]
    result = run(
        compose_config(
            [
                *TINY,
                "method=distill",
                "method.teacher_source=run",
                f"method.teacher_run={teacher_dir}",
                "method.teacher_modality=image",
                "method.student_modality=audio",
                f"output_dir={tmp_path}",
                "run_name=student",
            ]
        ),
        quiet=True,
    )
    assert result.value("linear_probe_acc", "audio", "labels=1") > 0
    student = rundir.load_run(result.run_dir).method
    teacher = rundir.load_encoder(teacher_dir, "image")
    for key, value in teacher.state_dict().items():
        assert torch.equal(student.teacher.state_dict()[key], value), key  # frozen
    log = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    assert log["train/cosine"].notna().sum() == 1  # the student phase ran (one epoch)


def test_a_teacher_run_that_is_no_run_is_one_config_error(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            *TINY,
            "method=distill",
            "method.teacher_source=run",
            f"method.teacher_run={tmp_path / 'nowhere'}",
            f"output_dir={tmp_path}",
        ]
    )
    with pytest.raises(ConfigError, match=r"teacher_run=.*config\.yaml"):
        run(cfg, quiet=True)
