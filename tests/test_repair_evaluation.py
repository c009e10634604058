"""The repair metrics the runner adds to the store, checked against independent values."""

import pytest
import torch

from modalab.data import MultimodalTensorDataset
from modalab.evaluation.features import EvalConfig, FeatureSet
from modalab.evaluation.noisy_labels import noisy_label_probe
from modalab.evaluation.repair import (
    broken_pair_flags,
    head_accuracy_records,
    noisy_probe_records,
)
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.config import compose_config
from modalab.methods.distill import build_distill


class _FixedPairLosses:
    """Stands in for a clip_rince method: per-pair loss = the sample's first feature."""

    device = torch.device("cpu")

    def pair_losses(self, batch):
        rows = batch.present["a"] & batch.present["b"]
        return batch.inputs["a"][rows, 0], rows


def test_broken_pair_flags_flag_the_largest_losses_as_many_as_broken():
    # Losses 0..7; rows 6, 7 and 1 are broken: k = 3 flags the losses 7, 6, 5.
    losses = torch.arange(8.0).unsqueeze(1)
    broken = torch.zeros(8, dtype=torch.bool)
    broken[[1, 6, 7]] = True
    ds = MultimodalTensorDataset(
        {"a": losses, "b": torch.zeros(8, 2)},
        torch.zeros(8).long(),
        extras={"misaligned": broken},
    )
    flagged, truth = broken_pair_flags(_FixedPairLosses(), ds, batch_size=3)  # type: ignore[arg-type]
    assert flagged.tolist() == [False] * 5 + [True] * 3
    assert truth.tolist() == broken.tolist()
    # precision = recall = 2 / 3 by hand
    assert float((flagged & truth).sum()) / 3 == pytest.approx(2 / 3)


def test_broken_pair_flags_need_a_misaligned_mask():
    ds = MultimodalTensorDataset(
        {"a": torch.zeros(4, 1), "b": torch.zeros(4, 1)}, torch.zeros(4).long()
    )
    with pytest.raises(ValueError, match="misalign"):
        broken_pair_flags(_FixedPairLosses(), ds)  # type: ignore[arg-type]


def _tiny(method, *extra):
    cfg = compose_config(
        ["data.n_samples=120", "data.modalities=[image,audio]", "model.embed_dim=8", method, *extra]
    )
    splits = build_data(dict(cfg.data))
    torch.manual_seed(0)
    encoder = build_encoders(dict(cfg.model), splits)
    built = build_method(dict(cfg.method), encoder, splits, 8, seed=0)
    return built.eval(), splits


def test_head_accuracy_of_balanced_fusion_matches_a_direct_pass():
    method, splits = _tiny("method=ogm_ge")
    test = splits.test
    records = {r.modality: r.value for r in head_accuracy_records(method, test, batch_size=7)}
    batch = test.full_batch()
    with torch.no_grad():
        emb = method.encoder(batch.inputs)
        # The fused logits are the sum of the per-modality linear shares W_m h_m + b / M.
        names = list(method.encoder.modalities)
        shares = {}
        for i, m in enumerate(names):
            w = method.head.weight[:, i * method.embed_dim : (i + 1) * method.embed_dim]
            shares[m] = emb[m] @ w.t() + method.head.bias / len(names)
        fused = emb_cat = torch.cat([emb[m] for m in names], 1) @ method.head.weight.t()
        fused = emb_cat + method.head.bias
    truth = batch.clean_label
    assert records["fused"] == pytest.approx((fused.argmax(1) == truth).float().mean().item())
    for m in names:
        assert records[m] == pytest.approx((shares[m].argmax(1) == truth).float().mean().item())


def test_head_accuracy_ignores_methods_without_a_head():
    method, splits = _tiny("method=clip")
    assert head_accuracy_records(method, splits.test) == []


def _features(n, noisy_rows, seed):
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % 3
    x = torch.nn.functional.one_hot(label, 3).float() * 3 + 0.3 * torch.randn(n, 3, generator=g)
    noisy = label.clone()
    noisy[noisy_rows] = (noisy[noisy_rows] + 1) % 3
    return FeatureSet(
        features={"a": x},
        present={"a": torch.ones(n, dtype=torch.bool)},
        label=noisy,
        label_observed=torch.ones(n, dtype=torch.bool),
        clean_label=label,
        index=torch.arange(n),
    )


def test_noisy_probe_records_equal_direct_probes_and_the_noise_mask():
    noisy_rows = torch.arange(0, 90, 5)  # 18 of 90 labels wrong, every class
    train, test = _features(90, noisy_rows, 0), _features(60, torch.tensor([], dtype=torch.long), 1)
    records = noisy_probe_records(train, test, 3, ["ce", "gce"], forget_rate=0.2, seed=0)
    got = {(r.metric, r.condition): r.value for r in records}
    x, tx = train.fused(), test.fused()
    for loss in ("ce", "gce"):
        direct = noisy_label_probe(x, train.label, tx, test.clean_label, 3, loss=loss, seed=0)
        assert got[("noisy_probe_acc", f"loss={loss}")] == pytest.approx(direct.accuracy)
    mask = torch.zeros(90, dtype=torch.bool)
    mask[noisy_rows] = True
    sel = noisy_label_probe(
        x, train.label, tx, test.clean_label, 3, forget_rate=0.2, noise_mask=mask, seed=0
    )
    hits = float((sel.flagged & mask).sum())
    condition = "loss=ce,forget=0.2"
    assert got[("flag_precision", condition)] == pytest.approx(hits / float(sel.flagged.sum()))
    assert got[("flag_recall", condition)] == pytest.approx(hits / 18)
    # Well-separated features: the wrong labels have the largest losses.
    assert got[("flag_recall", condition)] > 0.9


def test_noisy_probe_settings_are_validated():
    with pytest.raises(ValueError, match="noisy_probe_losses"):
        EvalConfig(noisy_probe_losses=["mae"]).validate()
    with pytest.raises(ValueError, match="noisy_probe_forget_rate"):
        EvalConfig(noisy_probe_forget_rate=1.0).validate()
    train = _features(30, torch.tensor([0]), 0)
    with pytest.raises(ValueError, match="unknown losses"):
        noisy_probe_records(train, train, 3, ["mae"])


@pytest.mark.parametrize(
    ("modalities", "teacher", "student"),
    [(["text", "image"], "text", "image"), (["image", "audio"], "image", "audio")],
)
def test_distill_teacher_preference_and_other_student(modalities, teacher, student):
    cfg = compose_config(["data.n_samples=60", f"data.modalities=[{','.join(modalities)}]"])
    splits = build_data(dict(cfg.data))
    encoder = build_encoders(dict(cfg.model), splits)
    method = build_distill(
        encoder, splits.num_classes, 32, teacher_modality="text|image", student_modality=""
    )
    assert (method.teacher_modality, method.student_modality) == (teacher, student)


def test_distill_modality_errors_name_the_data():
    cfg = compose_config(["data.n_samples=60", "data.modalities=[image,audio,text]"])
    splits = build_data(dict(cfg.data))
    encoder = build_encoders(dict(cfg.model), splits)
    with pytest.raises(ValueError, match="exactly two modalities"):
        build_distill(encoder, splits.num_classes, 32, student_modality="")  # teacher: image
    with pytest.raises(ValueError, match="names none"):
        build_distill(encoder, splits.num_classes, 32, teacher_modality="depth|video")


def test_sweep_datasets_option_keeps_only_the_named_datasets(capsys):
    from pathlib import Path

    from modalab.cli.main import main

    study = str(Path(__file__).resolve().parents[1] / "studies" / "repair_imbalance.yaml")
    assert main(["sweep", study, "--dry-run", "--smoke", "--datasets", "shapes"]) == 0
    lines = [
        x for x in capsys.readouterr().out.splitlines() if x.split()[:1] in (["todo"], ["done"])
    ]
    # (4 methods x 1 severity + 2 unimodal reference rows) x 1 smoke seed, all on shapes
    assert len(lines) == 6 and all(" shapes " in x for x in lines)
    assert sum("=reference " in x for x in lines) == 2
    assert main(["sweep", study, "--dry-run", "--datasets", "mnist"]) == 2
    assert "not among the study's datasets" in capsys.readouterr().out
