"""``ChannelsLastBatchNorm2d``: PyTorch's batch norm in values, gradients and running statistics.

The reference is ``torch.nn.BatchNorm2d`` itself, run in float64 on NCHW input (its exact
two-pass kernel), against which the fast NHWC path (float32) and PyTorch's own channels-last
float32 kernel are both compared.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modalab.models.encoders import LeNetEncoder
from modalab.models.norm import ChannelsLastBatchNorm2d, _BatchNormNHWC, _row_width


def _pair(channels: int, momentum: float | None = 0.1) -> tuple[nn.Module, nn.Module]:
    fast = ChannelsLastBatchNorm2d(channels, momentum=momentum)
    ref = nn.BatchNorm2d(channels, momentum=momentum).double()
    with torch.no_grad():
        fast.weight.uniform_(-1.5, 1.5)  # negative scales too
        fast.bias.normal_()
        ref.weight.copy_(fast.weight)
        ref.bias.copy_(fast.bias)
    return fast, ref


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("channels", "size"), [(6, 24), (12, 9), (1, 5), (5, 7), (24, 4)])
def test_training_pass_equals_batchnorm2d(channels: int, size: int) -> None:
    torch.manual_seed(channels)
    fast, ref = _pair(channels)
    # An offset mean of 4 and a scale of 3: the centred two-pass variance matters.
    x = _nhwc(torch.randn(16, channels, size, size) * 3 + 4)
    assert fast._fast(x) == (channels > 1)
    grad = _nhwc(torch.randn_like(x))
    xf, xr = x.clone().requires_grad_(), x.double().requires_grad_()
    yf, yr = fast(xf), ref(xr)
    yf.backward(grad)
    yr.backward(grad.double())
    assert yf.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yf.double(), yr, rtol=0, atol=2e-5)
    torch.testing.assert_close(xf.grad.double(), xr.grad, rtol=0, atol=2e-5)
    torch.testing.assert_close(fast.weight.grad.double(), ref.weight.grad, rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(fast.bias.grad.double(), ref.bias.grad, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_and_eval_equal_batchnorm2d(momentum: float | None) -> None:
    torch.manual_seed(1)
    fast, ref = _pair(6, momentum)
    for step in range(4):
        x = _nhwc(torch.randn(8, 6, 10, 10) * (step + 1) + step)
        fast(x)
        ref(x.double())
    assert int(fast.num_batches_tracked) == int(ref.num_batches_tracked) == 4
    torch.testing.assert_close(fast.running_mean.double(), ref.running_mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.running_var.double(), ref.running_var, rtol=1e-5, atol=1e-6)
    fast.eval()
    ref.eval()
    x = _nhwc(torch.randn(3, 6, 10, 10))
    assert not fast._fast(x)  # eval: PyTorch's kernel with the running statistics
    torch.testing.assert_close(fast(x).double(), ref(x.double()), rtol=1e-5, atol=1e-5)


def test_gradcheck_in_float64() -> None:
    torch.manual_seed(2)
    x = _nhwc(torch.randn(3, 4, 3, 5, dtype=torch.float64)).requires_grad_()
    w = torch.randn(4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: _BatchNormNHWC.apply(*a, 1e-5)[0], (x, w, b))


def test_other_inputs_take_pytorchs_kernel() -> None:
    norm = ChannelsLastBatchNorm2d(6)
    assert not norm._fast(torch.randn(4, 6, 5, 5))  # NCHW
    assert not norm._fast(_nhwc(torch.randn(4, 6, 5, 5)).bfloat16())  # autocast's bf16
    assert not ChannelsLastBatchNorm2d(40)._fast(_nhwc(torch.randn(4, 40, 5, 5)))  # many channels
    assert not norm._fast(torch.randn(4, 6, 1, 1))  # both layouts at once


def test_row_width_divides_the_pixels() -> None:
    assert _row_width(6, 256 * 112 * 112) == 32  # 6 · 32 = 192 = 3 · 64
    assert _row_width(12, 100) == 4
    assert _row_width(5, 7 * 7 * 3) == 1  # odd pixel counts: one pixel per row


def test_lenet_state_dict_is_batchnorm2ds() -> None:
    """Checkpoints of the encoder with ``nn.BatchNorm2d`` load, and give the same outputs."""
    torch.manual_seed(3)
    fast = LeNetEncoder(1, 16, spatial=(28, 28))
    plain = LeNetEncoder(1, 16, spatial=(28, 28), channels_last=False)
    for block in plain.blocks:
        block[1] = nn.BatchNorm2d(block[1].num_features)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(6, 1, 28, 28)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
    fast.eval()
    plain.eval()
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
