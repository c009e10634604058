"""Self-supervised pre-training then supervised fine-tuning (``method=finetune``)."""

import copy
import dataclasses

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from modalab.data.batch import MultimodalBatch
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.config import compose_config
from modalab.experiments.errors import ConfigError
from modalab.experiments.rundir import load_run
from modalab.experiments.runner import run
from modalab.methods.finetune import FineTuneMethod
from modalab.objectives.clip import CLIPLoss

TINY = [
    "data.n_samples=160",
    "data.image_size=16",
    "data.audio_length=256",
    "trainer.batch_size=64",
    "model.embed_dim=16",
    "trainer.enable_progress_bar=false",
    "eval.knn_k=5",
    "eval.l2_grid=[0.01]",
    "eval.retrieval_ks=[1]",
]


def _method(*overrides: str) -> tuple[FineTuneMethod, MultimodalBatch]:
    cfg = compose_config([*TINY, "method=finetune", *overrides])
    splits = build_data(cfg["data"])
    encoder = build_encoders(cfg["model"], splits)
    method = build_method(cfg["method"], encoder, splits, 16)
    assert isinstance(method, FineTuneMethod)
    return method, splits.train.__getitems__(list(range(32)))


def test_each_phase_optimises_its_own_loss_on_the_shared_encoder() -> None:
    method, batch = _method("method.pretrain=clip", "method.pretrain_epochs=2")
    encoder = method.encoder
    # Pre-training (epoch 0 < 2): CLIP's loss of the encoder's projections, recomputed here
    # from the modules it must use; it ignores the labels.
    assert method.in_pretraining
    loss = method.step_loss(batch, "train").loss
    reps = encoder(batch.inputs)
    clip = method.pretrain_parts["loss"]
    assert isinstance(clip, CLIPLoss)
    expected = clip(encoder.project(reps), batch.present).loss
    torch.testing.assert_close(loss, expected)
    shuffled = dataclasses.replace(batch, label=batch.label.roll(1))
    torch.testing.assert_close(method.step_loss(shuffled, "train").loss, loss)
    # Fine-tuning: cross-entropy of the head on the fused encoder outputs, observed labels only.
    method.pretrain_epochs = 0
    observed = torch.arange(32) % 3 != 0
    half = dataclasses.replace(batch, label_observed=observed)
    logits = method.classify(reps, batch.present)
    expected = F.cross_entropy(logits[observed], batch.label[observed])
    torch.testing.assert_close(method.step_loss(half, "train").loss, expected)
    # One encoder in the state (no second copy under the pre-training method), and CLIP's
    # temperature is trained with it.
    names = list(method.state_dict())
    assert sum(".encoders.image." in n for n in names) == len(
        [n for n in encoder.state_dict() if n.startswith("encoders.image.")]
    )
    assert "pretrain_parts.loss.log_logit_scale" in names


@pytest.mark.slow
@pytest.mark.parametrize("pretrain", ["simclr", "vicreg"])
def test_siamese_pretraining_is_the_methods_own_loss(pretrain: str) -> None:
    method, batch = _method(f"method.pretrain={pretrain}")
    reference = copy.deepcopy(method._pretrain)  # the same weights, computed apart
    torch.testing.assert_close(
        method.step_loss(batch, "train").loss, reference.compute_loss(batch).loss
    )


def test_bad_settings_are_refused_with_the_valid_choices() -> None:
    with pytest.raises(ConfigError, match=r"cannot run inside fine-tuning.*clip"):
        _method("method.pretrain=moco")
    with pytest.raises(ConfigError, match="pretrain_epochs must be >= 1"):
        _method("method.pretrain_epochs=0")


@pytest.mark.slow
def test_a_run_pretrains_then_fine_tunes_and_evaluates_a_fine_tuning_epoch(tmp_path) -> None:
    result = run(
        compose_config(
            [
                *TINY,
                f"output_dir={tmp_path}",
                "method=finetune",
                "method.pretrain_epochs=2",
                "trainer.max_epochs=4",
                "scenario=[label_noise]",
                "scenario.label_noise.rate=0.3",
            ]
        ),
        quiet=True,
    )
    log = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    assert log["train/pretrain"].notna().sum() == 2  # epochs 0-1: CLIP
    assert log["train/acc"].notna().sum() == 2  # epochs 2-3: cross-entropy
    training = result.training
    assert training["selection_start_epoch"] == 2
    assert training["evaluated_epoch"] >= 2  # never the pre-trained, head-less state
    # The saved weights rebuild the same classifier: its head reproduces the run's accuracy.
    loaded = load_run(result.run_dir)
    test = loaded.splits.test.__getitems__(list(range(len(loaded.splits.test))))
    with torch.no_grad():
        accuracy = (loaded.method(test).argmax(1) == test.clean_label).float().mean().item()
    assert accuracy == pytest.approx(result.value("head_acc", "fused", ""), abs=1e-6)


def test_max_epochs_within_the_first_phase_is_a_config_error() -> None:
    for method, key in (("finetune", "pretrain_epochs"), ("distill", "teacher_epochs")):
        with pytest.raises(ConfigError, match=f"leaves no epoch after method.{key}=3"):
            compose_config([f"method={method}", f"method.{key}=3", "trainer.max_epochs=3"])
    compose_config(["method=finetune", "method.pretrain_epochs=3", "trainer.max_epochs=4"])
    # A teacher loaded from a finished run has no phase.
    compose_config(
        ["method=distill", "method.teacher_source=encoder", "method.teacher_epochs=3",
         "trainer.max_epochs=3"]
    )  # fmt: skip
