"""Mixed precision and memory layout: bf16 autocast keeps losses in float32; channels_last
convolutions give the NCHW values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modalab.cli.main import main
from modalab.models.encoders import ConvEncoder
from modalab.objectives import CLIPLoss, NTXentLoss, VICRegLoss
from modalab.objectives.precision import full_precision


def _embeddings(n: int = 32, d: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, d, generator=g)
    return {"image": a, "text": a + 0.3 * torch.randn(n, d, generator=g)}


def test_loss_under_bf16_autocast_equals_the_float32_loss() -> None:
    emb = _embeddings()
    present = {m: torch.ones(32, dtype=torch.bool) for m in emb}
    loss = CLIPLoss(temperature=0.01, learn_temperature=False)
    reference = loss(emb, present).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(emb, present).loss
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, reference)  # same float32 computation, bit for bit
    # Without the decorator the similarities would be bfloat16: a visibly different loss.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        sims = F.normalize(emb["image"], dim=1) @ F.normalize(emb["text"], dim=1).t()
    assert sims.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "make",
    [lambda: NTXentLoss(temperature=0.1, gather_distributed=False), lambda: VICRegLoss()],
)
def test_other_losses_are_float32_under_autocast(make) -> None:
    loss = make()
    # What encoders under autocast hand to the loss: bfloat16 embeddings.
    low = {m: v.bfloat16() for m, v in _embeddings().items()}
    present = {m: torch.ones(32, dtype=torch.bool) for m in low}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(low, present).loss
    # The reference: the same values in float32, no autocast.
    reference = loss({m: v.float() for m, v in low.items()}, present).loss
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, reference)


def test_full_precision_is_a_no_op_outside_autocast() -> None:
    calls = []

    @full_precision
    def f(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.dtype)
        return x * 2

    x = torch.ones(3, dtype=torch.bfloat16)
    assert f(x).dtype == torch.bfloat16 and calls == [torch.bfloat16]


def test_channels_last_encoder_matches_nchw_values_and_gradients() -> None:
    torch.manual_seed(0)
    fast = ConvEncoder(2, in_channels=1, embed_dim=8, channels_last=True)
    plain = ConvEncoder(2, in_channels=1, embed_dim=8, channels_last=False)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(6, 1, 40, 101)
    out_fast, out_plain = fast(x), plain(x)
    torch.testing.assert_close(out_fast, out_plain, rtol=1e-4, atol=1e-5)
    out_fast.square().sum().backward()
    out_plain.square().sum().backward()
    for (name, p_fast), p_plain in zip(fast.named_parameters(), plain.parameters()):
        torch.testing.assert_close(p_fast.grad, p_plain.grad, rtol=1e-3, atol=1e-4, msg=name)
    # token states are the same positions in the same order
    torch.testing.assert_close(fast.token_states(x)[0], plain.token_states(x)[0])
    assert not ConvEncoder(1, 1, 8).channels_last  # 1-D encoders keep their layout


def test_channels_last_encoder_pools_to_the_mean_without_an_nchw_gradient() -> None:
    """The global pooling equals the spatial mean; its gradient is not materialised NCHW."""
    torch.manual_seed(0)
    encoder = ConvEncoder(2, in_channels=1, embed_dim=8, channels_last=True)
    x = torch.randn(4, 1, 40, 101)
    grads = []

    def keep_gradient(module: torch.nn.Module, inputs: object, out: torch.Tensor) -> None:
        if out.requires_grad:
            out.register_hook(grads.append)

    encoder.features.register_forward_hook(keep_gradient)
    out = encoder(x)
    with torch.no_grad():
        torch.testing.assert_close(out, encoder.out(encoder._feature_map(x).mean(dim=(2, 3))))
    out.sum().backward()
    (grad,) = grads  # h.mean's backward hands the last block a contiguous NCHW gradient
    assert grad.shape == (4, 128, 5, 13) and not grad.is_contiguous()
    assert grad.stride()[2:] == (0, 0)  # a broadcast view, fine with the NHWC activation


@pytest.mark.slow
def test_bf16_mixed_run_on_cpu(tmp_path: Path) -> None:
    args = [
        "run",
        "--quiet",
        "data.n_samples=300",
        "trainer.max_epochs=1",
        "trainer.batch_size=64",
        "eval.l2_grid=[0.01]",
        "trainer.precision=bf16-mixed",
        f"output_dir={tmp_path}",
        "run_name=bf16",
    ]
    assert main(args) == 0
    metrics = json.loads((tmp_path / "bf16" / "metrics.json").read_text())["metrics"]
    probe = [m["value"] for m in metrics if m["metric"] == "linear_probe_acc"]
    assert probe and all(0 <= v <= 1 for v in probe)
