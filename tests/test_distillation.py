import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.distill import DistillationMethod, build_distill
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.distillation import (
    FeatureDistillationLoss,
    SoftLabelDistillationLoss,
    feature_distillation_loss,
    soft_label_distillation_loss,
)


def test_cosine_and_mse_match_reference_on_masked_rows():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    mask = torch.tensor([True, False, True, True, False, True])
    rows = [0, 2, 3, 5]
    cos = [1 - float(s[i] @ t[i]) / (float(s[i].norm()) * float(t[i].norm())) for i in rows]
    mse = [float(((s[i] - t[i]) ** 2).sum()) / 5 for i in rows]
    out_cos = feature_distillation_loss(s, t, mask, "cosine")
    out_mse = feature_distillation_loss(s, t, mask, "mse")
    assert out_cos.loss.item() == pytest.approx(sum(cos) / 4, abs=1e-6)
    assert out_mse.loss.item() == pytest.approx(sum(mse) / 4, abs=1e-6)
    assert out_cos.num_rows == {"cosine": 4}


def test_teacher_receives_no_gradient_and_absent_rows_none():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    mask = torch.tensor([True, True, False, False])
    feature_distillation_loss(s, t, mask, "mse").loss.backward()
    assert t.grad is None
    assert torch.all(s.grad[2:] == 0) and torch.all(s.grad[:2] != 0)


def test_kd_equals_hinton_formula():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    temperature = 3.0
    expected = 0.0
    for i in range(5):
        p = [math.exp(v / temperature) for v in t[i].tolist()]
        q = [math.exp(v / temperature) for v in s[i].tolist()]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        expected += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    expected = expected / 5 * temperature**2
    out = soft_label_distillation_loss(s, t, temperature)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert SoftLabelDistillationLoss(temperature)(s, t).loss.item() == pytest.approx(
        expected, rel=1e-5
    )


def test_kd_is_zero_when_student_matches_teacher_and_gradient_steps_lower_it():
    t = torch.randn(8, 3)
    assert soft_label_distillation_loss(t.clone(), t, 2.0).loss.item() == pytest.approx(0, abs=1e-6)
    s = torch.zeros(8, 3, requires_grad=True)
    opt = torch.optim.SGD([s], lr=1.0)
    first = soft_label_distillation_loss(s, t, 2.0).loss.item()
    for _ in range(20):
        opt.zero_grad()
        soft_label_distillation_loss(s, t, 2.0).loss.backward()
        opt.step()
    assert soft_label_distillation_loss(s, t, 2.0).loss.item() < 0.5 * first


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="temperature"):
        soft_label_distillation_loss(torch.zeros(2, 2), torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="kind"):
        FeatureDistillationLoss("l1")
    with pytest.raises(ValueError, match="same D"):
        feature_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="bool"):
        feature_distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2))


def _encoder() -> MultimodalEncoder:
    return MultimodalEncoder(nn.ModuleDict({"image": nn.Linear(6, 4), "audio": nn.Linear(3, 4)}))


def test_build_distill_validates_configuration():
    with pytest.raises(ValueError, match="student_modality"):
        build_distill(_encoder(), 2, 4, student_modality="text")
    with pytest.raises(ValueError, match="teacher_source=train"):
        build_distill(_encoder(), 2, 4, teacher_source="encoder", objective="kd")
    with pytest.raises(ValueError, match="teacher_run"):
        build_distill(_encoder(), 2, 4, teacher_source="run")


def test_distillation_step_updates_only_the_student():
    torch.manual_seed(0)
    method = build_distill(_encoder(), 2, 4, teacher_source="encoder", objective="cosine")
    assert isinstance(method, DistillationMethod)
    batch = MultimodalBatch.from_inputs(
        {"image": torch.randn(8, 6), "audio": torch.randn(8, 3)},
        label=torch.randint(0, 2, (8,)),
        present={"audio": torch.tensor([True] * 6 + [False] * 2)},
    )
    loss = method.distillation_loss(batch).loss
    loss.backward()
    assert all(p.grad is None for p in method.teacher.parameters())
    assert method.student.weight.grad is not None
    # The loss is the cosine regression of the student head output onto the teacher, rows 0-5.
    with torch.no_grad():
        s = method.student_head(method.student(batch.inputs["audio"]))[:6]
        t = method.teacher(batch.inputs["image"])[:6]
        expected = (1 - F.cosine_similarity(s, t)).mean()
    assert loss.item() == pytest.approx(expected.item(), abs=1e-6)


def test_contrastive_objective_is_clip_loss_to_frozen_teacher():
    torch.manual_seed(0)
    method = build_distill(
        _encoder(), 2, 4, teacher_source="encoder", objective="contrastive", temperature=0.5
    )
    batch = MultimodalBatch.from_inputs({"image": torch.randn(5, 6), "audio": torch.randn(5, 3)})
    loss = method.distillation_loss(batch).loss
    with torch.no_grad():
        s = F.normalize(method.student_head(method.student(batch.inputs["audio"])), dim=1)
        t = F.normalize(method.teacher(batch.inputs["image"]), dim=1)
        logits = 2.0 * s @ t.t()
        target = torch.arange(5)
        expected = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_build_distill_takes_its_run_teacher_from_the_load_teacher_context():
    teacher = nn.Linear(6, 5)
    calls = []

    def load_teacher(run_dir: str, modality: str) -> tuple[nn.Module, int]:
        calls.append((run_dir, modality))
        return teacher, 5

    method = build_distill(
        _encoder(), 2, 4, load_teacher=load_teacher, teacher_source="run", teacher_run="runs/t"
    )
    assert calls == [("runs/t", "image")]
    assert method.teacher is teacher
    assert not any(p.requires_grad for p in teacher.parameters())  # frozen
    assert method.student_head(torch.zeros(1, 4)).shape == (1, 5)  # student maps into dim 5
    with pytest.raises(ValueError, match="teacher loader"):
        build_distill(_encoder(), 2, 4, teacher_source="run", teacher_run="runs/t")
