import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.balanced_fusion import build_ogm_ge
from modalab.methods.tricks import (
    gaussian_enhanced_gradients,
    gradient_blend_weights,
    modality_scores,
    ogm_ge_coefficients,
)
from modalab.models.multimodal import MultimodalEncoder


def test_ogm_ge_coefficient_on_constructed_example():
    # audio predicts the true class with p = 0.9 on 4 samples, visual with p = 0.5.
    label = torch.tensor([0, 1, 0, 1])
    strong = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]]))
    weak = torch.zeros(4, 2)
    scores = modality_scores({"audio": strong, "visual": weak}, label)
    assert scores["audio"].item() == pytest.approx(3.6, rel=1e-6)
    assert scores["visual"].item() == pytest.approx(2.0, rel=1e-6)
    k = ogm_ge_coefficients(scores, alpha=0.8)
    # paper, eq. 9-10: rho_a = 3.6 / 2.0, k_a = 1 - tanh(alpha * (rho_a - 1)), k_v = 1
    assert k["audio"] == pytest.approx(1 - math.tanh(0.8 * (3.6 / 2.0 - 1)), rel=1e-6)
    assert k["visual"] == 1.0
    balanced = ogm_ge_coefficients({"a": 2.0, "b": 2.0}, 1.0)
    assert balanced == {"a": 1.0, "b": 1.0}
    with pytest.raises(ValueError, match="alpha"):
        ogm_ge_coefficients(scores, 0.0)


def test_gaussian_enhancement_scales_and_adds_noise_of_gradient_std():
    w = nn.Parameter(torch.zeros(200, 200))
    grad = torch.randn(200, 200, generator=torch.Generator().manual_seed(0)) * 3.0
    w.grad = grad.clone()
    gaussian_enhanced_gradients([w], 0.25, torch.Generator().manual_seed(1), enhance=True)
    noise = w.grad - 0.25 * grad
    assert noise.std().item() == pytest.approx(grad.std().item(), rel=0.02)
    assert abs(noise.mean().item()) < 0.05


def _method(modulation="ogm", blend="none"):
    torch.manual_seed(0)
    enc = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
    return build_ogm_ge(enc, 2, 4, modulation=modulation, alpha=1.0, blend=blend)


def test_contributions_sum_to_fused_linear_head():
    method = _method()
    batch = MultimodalBatch.from_inputs({"a": torch.randn(5, 3), "b": torch.randn(5, 2)})
    emb = method.encoder(batch.inputs)
    shares = method.contributions(emb, batch.present)
    fused = method.head(torch.cat([emb["a"], emb["b"]], 1))
    assert torch.allclose(shares["a"] + shares["b"], fused, atol=1e-6)
    assert torch.allclose(method(batch), fused, atol=1e-6)


def test_modulation_scales_the_dominant_encoder_gradient():
    method = _method("ogm")
    batch = MultimodalBatch.from_inputs(
        {"a": torch.randn(16, 3), "b": torch.randn(16, 2)}, label=torch.randint(0, 2, (16,))
    )
    # make 'a' dominant: its head weights large and aligned with the labels through its input
    with torch.no_grad():
        batch.inputs["a"][:, 0] = batch.label.float() * 4 - 2
    # the loss and coefficients of training_step, computed here without a Trainer
    emb = method.encoder(batch.inputs)
    shares = method.contributions(emb, batch.present)
    loss = F.cross_entropy(shares["a"] + shares["b"], batch.label)
    scores = modality_scores(shares, batch.label)
    method._coefficients = ogm_ge_coefficients(scores, 1.0)
    loss.backward()
    raw = {m: method.encoder.encoders[m].weight.grad.clone() for m in "ab"}
    method.on_after_backward()
    for m in "ab":
        assert torch.allclose(
            method.encoder.encoders[m].weight.grad, raw[m] * method._coefficients[m]
        )
    assert min(method._coefficients.values()) < 1.0


def test_gradient_blend_weights_against_hand_values():
    w = gradient_blend_weights(
        {"fused": 1.0, "a": 1.2, "b": 1.1},
        {"fused": 0.4, "a": 0.6, "b": 1.0},
        {"fused": 1.0, "a": 1.2, "b": 1.1},
        {"fused": 0.7, "a": 0.8, "b": 1.2},
    )
    g = {"fused": 0.3, "a": 0.4, "b": 0.0}
    o = {"fused": 0.3, "a": 0.2, "b": 0.2}
    raw = {k: g[k] / o[k] ** 2 for k in g}
    total = sum(raw.values())
    assert w == pytest.approx({k: v / total for k, v in raw.items()})
    assert w["b"] == 0.0
    with pytest.raises(ValueError, match="heads"):
        gradient_blend_weights({"a": 1.0}, {"b": 1.0}, {"a": 1.0}, {"a": 1.0})


def test_conv_only_modulation_leaves_every_other_gradient_alone():
    """method.modulated_params=conv: as the reference, only the conv kernels are scaled."""
    torch.manual_seed(0)

    def conv_encoder(dims: int) -> nn.Module:
        conv = nn.Conv1d(1, 2, 3) if dims == 1 else nn.Conv2d(1, 2, 3)
        return nn.Sequential(conv, nn.Flatten(), nn.LazyLinear(4))

    enc = MultimodalEncoder(nn.ModuleDict({"a": conv_encoder(2), "b": conv_encoder(1)}))
    inputs = {"a": torch.randn(8, 1, 5, 5), "b": torch.randn(8, 1, 7)}
    enc(inputs)  # materialise the lazy layers
    method = build_ogm_ge(enc, 2, 4, modulation="ogm", alpha=1.0, modulated_params="conv")
    label = torch.randint(0, 2, (8,))
    batch = MultimodalBatch.from_inputs(inputs, label=label)
    loss = F.cross_entropy(method(batch), batch.label)
    loss.backward()
    before = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
    method._coefficients = {"a": 0.25, "b": 0.5}
    method.on_after_backward()
    for name, p in method.named_parameters():
        if p.grad is None:
            continue
        modality = name.split(".")[2] if name.startswith("encoder.encoders.") else ""
        is_conv_weight = name.endswith("0.weight") and modality in ("a", "b")
        factor = method._coefficients[modality] if is_conv_weight else 1.0
        assert torch.allclose(p.grad, before[name] * factor), name
    with pytest.raises(ValueError, match="no convolution"):
        _method_conv_on_linear()


def _method_conv_on_linear():
    enc = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
    return build_ogm_ge(enc, 2, 4, modulation="ogm", modulated_params="conv")


def test_reference_coefficient_rule_without_offset():
    """ratio_offset=0 is the reference code's k = 1 - tanh(alpha * rho) for rho > 1."""
    for sa, sv, alpha in [(3.0, 1.0, 0.5), (1.2, 1.0, 0.8), (5.0, 4.0, 0.1)]:
        k = ogm_ge_coefficients({"a": sa, "v": sv}, alpha, ratio_offset=0.0)
        assert k["a"] == pytest.approx(1 - math.tanh(alpha * sa / sv))
        assert k["v"] == 1.0
    k = ogm_ge_coefficients({"a": 1.0, "v": 1.0}, 0.5, ratio_offset=0.0)
    assert k == {"a": 1.0, "v": 1.0}  # no modality leads: no damping
