"""End-to-end: every repair recipe trains through the runner and is evaluated by the evaluator."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from modalab.data.batch import MultimodalBatch
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.config import compose_config
from modalab.experiments.rundir import load_run, load_teacher
from modalab.experiments.runner import run

TINY = [
    "data.n_samples=240",
    "trainer.max_epochs=2",
    "trainer.batch_size=64",
    "model.embed_dim=16",
    "trainer.enable_progress_bar=false",
    "eval.knn_k=5",
    "eval.l2_grid=[0.01]",
]


def _run(tmp_path, *overrides):
    return run(compose_config([*TINY, f"output_dir={tmp_path}", *overrides]), quiet=True)


@pytest.mark.slow
def test_ogm_ge_logs_per_modality_learning_curves(tmp_path):
    result = _run(tmp_path, "method=ogm_ge", "data.modalities=[image,audio]")
    log = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    for column in ("train/acc_image", "train/acc_audio", "val/acc_audio", "train/coeff_image"):
        assert column in log.columns
        assert log[column].notna().sum() == 2  # one value per epoch
    coeffs = log[["train/coeff_image", "train/coeff_audio"]].dropna().to_numpy()
    assert ((coeffs > 0) & (coeffs <= 1)).all() and (coeffs < 1).any()
    assert result.value("linear_probe_acc", "fused", "labels=1") > 0


@pytest.mark.slow
def test_grad_blend_reestimates_weights(tmp_path):
    result = _run(
        tmp_path, "method=grad_blend", "data.modalities=[image,audio]", "trainer.max_epochs=3"
    )
    log = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    weights = log[["train/blend_fused", "train/blend_image", "train/blend_audio"]].dropna()
    assert len(weights) == 3
    assert weights.iloc[-1].sum() == pytest.approx(1.0, abs=1e-5)  # normalised after epoch 2


@pytest.mark.slow
def test_distill_from_a_finished_run_keeps_the_teacher_frozen(tmp_path):
    teacher_run = _run(tmp_path, "method=supervised", "data.modalities=[image]", "run_name=teacher")
    loaded, dim = load_teacher(str(teacher_run.run_dir), "image")
    assert dim == 16
    result = _run(
        tmp_path,
        "method=distill",
        "method.teacher_source=run",
        f"method.teacher_run={teacher_run.run_dir}",
        "data.modalities=[image,audio]",
    )
    method = load_run(result.run_dir).method
    for key, value in loaded.state_dict().items():
        assert torch.equal(method.teacher.state_dict()[key], value)  # unchanged by distillation
    assert result.value("linear_probe_acc", "audio", "labels=1") > 0


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["cosine", "kd"])
def test_distill_with_in_run_teacher(tmp_path, objective):
    result = _run(
        tmp_path,
        "method=distill",
        f"method.objective={objective}",
        "method.teacher_epochs=1",
        "data.modalities=[image,audio]",
    )
    log = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    assert log["train/teacher_ce"].notna().sum() == 1  # the teacher phase: epoch 0 only
    term = "train/kd" if objective == "kd" else "train/cosine"
    assert log[term].notna().sum() == 1  # the student phase: epoch 1
    # The teacher phase's validation loss (its cross-entropy) selects nothing: the evaluated
    # checkpoint is a student epoch, not the untrained student of epoch 0.
    training = result.training
    assert training["selection_start_epoch"] == 1
    assert training["best_epoch"] == 1 and training["evaluated_epoch"] == 1


@pytest.mark.slow
def test_supervised_robust_and_clip_rince_run(tmp_path):
    robust = _run(
        tmp_path,
        "method=supervised_robust",
        "method.fill=impute",
        "method.dropout_rate=0.5",
        "method.label_loss=gce",
    )
    log = pd.read_csv(robust.run_dir / "logs" / "metrics.csv")
    assert log["train/imputation"].notna().sum() == 2
    rince = _run(
        tmp_path,
        "method=clip_rince",
        "method.keep_fraction=0.75",
        "method.filter_warmup_epochs=1",
        "method.modalities=[image,text]",
    )
    assert rince.value("recall@1", "image->text") >= 0


def test_clip_rince_pair_losses_are_rince_over_present_rows():
    cfg = compose_config([*TINY, "method=clip_rince", "method.modalities=[image,text]"])
    splits = build_data(dict(cfg.data))
    method = build_method(dict(cfg.method), build_encoders(dict(cfg.model), splits), splits, 16)
    batch = splits.train.__getitems__(list(range(6)))
    batch.present["text"][1] = False
    losses, rows = method.pair_losses(batch)
    assert rows.tolist() == [True, False, True, True, True, True]
    with torch.no_grad():
        z = method.joint_embeddings(method.encoder(batch.inputs))
        a, b = z["image"][rows], z["text"][rows]
        logits = 10.0 * a @ b.t()
        expected = []
        for scores in (logits, logits.t()):
            expected.append(
                -torch.exp(0.5 * scores.diagonal()) / 0.5
                + (0.01 * scores.exp().sum(1)) ** 0.5 / 0.5
            )
    assert torch.allclose(losses, 0.5 * (expected[0] + expected[1]), rtol=1e-4)
    assert isinstance(batch, MultimodalBatch) and F is not None


def test_clip_rince_filter_logs_flag_precision_against_misaligned_mask():
    cfg = compose_config(
        [
            *TINY,
            "method=clip_rince",
            "method.modalities=[image,text]",
            "method.loss=infonce",
            "method.keep_fraction=0.5",
            "method.filter_warmup_epochs=0",
        ]
    )
    splits = build_data(dict(cfg.data))
    method = build_method(dict(cfg.method), build_encoders(dict(cfg.model), splits), splits, 16)
    batch = splits.train.__getitems__(list(range(8)))
    batch.extras["misaligned"] = torch.tensor([True, True, False, False, True, False, False, False])
    logged: dict[str, float] = {}
    method.log = lambda name, value, **_: logged.__setitem__(name, float(value))  # type: ignore[method-assign]
    loss = method.training_step(batch, 0)
    losses, _ = method.pair_losses(batch)
    keep = torch.sort(losses.detach(), stable=True).indices[:4]
    assert loss.item() == pytest.approx(losses[keep].mean().item(), rel=1e-6)
    flagged = torch.ones(8, dtype=torch.bool)
    flagged[keep] = False
    truth = batch.extras["misaligned"]
    hits = float((flagged & truth).sum())
    assert logged["train/flag_precision"] == pytest.approx(hits / 4)
    assert logged["train/flag_recall"] == pytest.approx(hits / 3)


@pytest.mark.slow
def test_in_run_teacher_is_frozen_after_its_phase():
    import lightning as L

    from modalab.data.tensor_dataset import make_loader

    cfg = compose_config(
        [*TINY, "method=distill", "method.teacher_epochs=1", "data.modalities=[image,audio]"]
    )
    splits = build_data(dict(cfg.data))
    method = build_method(dict(cfg.method), build_encoders(dict(cfg.model), splits), splits, 16)
    snapshots: list[dict[str, torch.Tensor]] = []

    class Snapshot(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            snapshots.append({k: v.clone() for k, v in module.teacher.state_dict().items()})

    student_before = {k: v.clone() for k, v in method.student.state_dict().items()}
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Snapshot()],
    )
    trainer.fit(method, make_loader(splits.train, 64, shuffle=True, drop_last=True))
    after_teacher_phase, final = snapshots[0], snapshots[-1]
    assert all(torch.equal(after_teacher_phase[k], final[k]) for k in final)
    assert not any(p.requires_grad for p in method.teacher.parameters())
    assert any(
        not torch.equal(student_before[k], v) for k, v in method.student.state_dict().items()
    )
