"""The ``lenet`` encoder (MultiBench's AV-MNIST LeNet) and its choice as ``data=avmnist``'s default.

Reference: ``LeNet`` in ``unimodals/common_models.py`` of pliang279/MultiBench, built as
``LeNet(1, 6, 3)`` (image) and ``LeNet(1, 6, 5)`` (audio) by
``examples/multimedia/avmnist_simple_late_fusion.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from modalab.data.avmnist import PROTOCOL_ENCODERS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits
from modalab.experiments.build import build_encoders, encoder_choices
from modalab.experiments.config import compose_config
from modalab.models.encoders import ConvEncoder, LeNetEncoder, build_encoder


def _hand_count(channels: int, additional: int, embed_dim: int) -> int:
    """Parameters of the cited LeNet + modalab's linear map, counted layer by layer."""
    total = 1 * channels * 5 * 5 + 2 * channels  # 5x5 conv (no bias) + batch norm (γ, β)
    width = channels
    for _ in range(additional):
        total += width * (2 * width) * 3 * 3 + 2 * (2 * width)  # 3x3 conv + batch norm
        width *= 2
    return total + width * embed_dim + embed_dim  # the linear map to embed_dim


@pytest.mark.parametrize(
    ("size", "layers", "width", "count"),
    [
        # image: 150 + 12 | 648 + 24 | 2,592 + 48 | 10,368 + 96 = 13,938 ; 48*128 + 128 = 6,272
        (28, 3, 48, 13_938 + 6_272),
        # audio: + 41,472 + 192 + 165,888 + 384 = 221,874 ; 192*128 + 128 = 24,704
        (112, 5, 192, 221_874 + 24_704),
    ],
)
def test_shape_layers_and_parameter_count(size: int, layers: int, width: int, count: int) -> None:
    encoder = build_encoder("lenet", torch.zeros(2, 1, size, size), embed_dim=128)
    assert isinstance(encoder, LeNetEncoder)
    assert encoder.layers == layers  # MultiBench's LeNet(1, 6, 3) / LeNet(1, 6, 5)
    assert encoder.width == width
    assert sum(p.numel() for p in encoder.parameters()) == count
    assert count == _hand_count(6, layers, 128)
    assert encoder(torch.randn(3, 1, size, size)).shape == (3, 128)
    states, keep = encoder.token_states(torch.randn(3, 1, size, size))
    assert states.shape[0] == 3 and states.shape[2] == width and bool(keep.all())


def _multibench_order(encoder: LeNetEncoder, x: torch.Tensor) -> torch.Tensor:
    """The cited forward, conv → BN → ReLU → 2x2 max pool per layer, written out independently."""
    h = x
    for block in encoder.blocks:
        conv, norm = block[0], block[1]
        h = F.conv2d(h, conv.weight, None, padding=conv.padding)
        h = F.batch_norm(h, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
        h = F.max_pool2d(F.relu(h), 2)
    return encoder.out(h.flatten(1))


@pytest.mark.parametrize("channels_last", [True, False])
def test_forward_equals_the_cited_layer_order(channels_last: bool) -> None:
    torch.manual_seed(0)
    encoder = LeNetEncoder(1, 32, spatial=(28, 28), channels_last=channels_last)
    with torch.no_grad():  # random affine BN parameters, some scales negative
        for block in encoder.blocks:
            block[1].weight.normal_()
            block[1].bias.normal_()
    x = torch.randn(5, 1, 28, 28)
    torch.testing.assert_close(encoder(x), _multibench_order(encoder, x), rtol=1e-4, atol=1e-5)


def test_explicit_layers_and_bad_layers() -> None:
    encoder = LeNetEncoder(1, 8, spatial=(28, 28), layers=1)  # 28 → 14 → 7: a 12 x 7 x 7 map
    assert encoder.out.in_features == 12 * 7 * 7
    assert encoder(torch.zeros(2, 1, 28, 28)).shape == (2, 8)
    with pytest.raises(ValueError, match="at most 3"):
        LeNetEncoder(1, 8, spatial=(28, 28), layers=4)
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        build_encoder("lenet", torch.zeros(2, 1, 100), embed_dim=8)


def test_avmnist_default_resolves_to_the_reference_encoders() -> None:
    cfg = compose_config(["data=avmnist", "method=supervised"])
    assert cfg.data.reference_encoders is True
    info = DataInfo(encoders=PROTOCOL_ENCODERS[cfg.data.protocol])
    assert encoder_choices(cfg.model, info, ["image", "audio"]) == {
        "image": "lenet",
        "audio": "lenet",
    }
    cfg = compose_config(["data=avmnist", "+model.encoders.image=cnn2d"])
    assert encoder_choices(cfg.model, info, ["image", "audio"]) == {
        "image": "cnn2d",
        "audio": "lenet",
    }
    cfg = compose_config(["data=avmnist", "data.protocol=clean"])
    clean = DataInfo(encoders=PROTOCOL_ENCODERS[cfg.data.protocol])
    assert encoder_choices(cfg.model, clean, ["image", "audio"]) == {
        "image": "auto",
        "audio": "auto",
    }


def test_build_encoders_reads_the_datasets_reference_and_the_override_wins() -> None:
    def split(n: int) -> MultimodalTensorDataset:
        inputs = {"image": torch.zeros(n, 1, 28, 28), "audio": torch.zeros(n, 1, 112, 112)}
        return MultimodalTensorDataset(inputs, torch.arange(n) % 10, num_classes=10)

    reference = DataInfo(encoders=PROTOCOL_ENCODERS["multibench"])
    splits = Splits(split(4), split(2), split(2), 10, reference)
    built = build_encoders({"embed_dim": 16, "encoders": {}}, splits)
    assert {m: type(e) for m, e in built.encoders.items()} == {
        "image": LeNetEncoder,
        "audio": LeNetEncoder,
    }
    built = build_encoders({"embed_dim": 16, "encoders": {"image": "cnn2d"}}, splits)
    assert isinstance(built.encoders["image"], ConvEncoder)
    assert isinstance(built.encoders["audio"], LeNetEncoder)
    plain = Splits(split(4), split(2), split(2), 10, DataInfo())  # data.reference_encoders=false
    built = build_encoders({"embed_dim": 16, "encoders": {}}, plain)
    assert all(isinstance(e, ConvEncoder) for e in built.encoders.values())


def test_finite_check_reads_the_pools_without_materialising() -> None:
    from modalab.data.indexed import IndexedMultimodalDataset
    from modalab.experiments.data_checks import check_finite_inputs
    from modalab.experiments.errors import DataError

    pool = torch.zeros(4, 1, 3, 3, dtype=torch.float16)
    pool[2, 0, 1, 1] = float("nan")  # pool row 2 is used by samples 1 and 4 of train
    image = torch.zeros(3, 2, dtype=torch.uint8)

    def split(rows: list[int], present: list[bool] | None = None) -> IndexedMultimodalDataset:
        n = len(rows)
        fields = {"present": {"audio": torch.tensor(present)}} if present else {}
        return IndexedMultimodalDataset(
            {"audio": pool, "image": image},
            {"audio": torch.tensor(rows), "image": torch.arange(n) % 3},
            torch.zeros(n, dtype=torch.long),
            num_classes=2,
            **fields,
        )

    clean = Splits(split([0, 1, 3]), split([1]), split([3]), 2, {})
    check_finite_inputs(clean, "data=x")  # the NaN row is in the pool but no sample uses it
    assert all(getattr(clean, s)._materialised is None for s in ("train", "val", "test"))
    # The same verdict as the materialised inputs: samples 1 and 4 hold the NaN.
    dirty = Splits(split([0, 2, 1, 3, 2]), split([1]), split([3]), 2, {})
    expected = (~torch.isfinite(dirty.train.inputs["audio"].flatten(1)).all(1)).nonzero()
    assert expected.flatten().tolist() == [1, 4]
    dirty.train._materialised = None
    with pytest.raises(DataError, match=r"2 train sample\(s\) of audio .*rows \[1, 4\]"):
        check_finite_inputs(dirty, "data=x")
    absent = Splits(split([0, 2], present=[True, False]), split([1]), split([3]), 2, {})
    check_finite_inputs(absent, "data=x")  # the NaN sample is absent: not an input
