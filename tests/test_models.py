import pytest
import torch
from torch import nn

from modalab.models import (
    ConcatFusion,
    LateFusionClassifier,
    MeanFusion,
    MultimodalEncoder,
    build_encoder,
    default_encoder_name,
)


@pytest.mark.parametrize(
    ("example", "name"),
    [
        (torch.zeros(2, 3, 32, 32), "cnn2d"),
        (torch.zeros(2, 1, 1024), "cnn1d"),
        (torch.zeros(2, 16, dtype=torch.long), "transformer"),
        (torch.zeros(2, 7), "mlp"),
    ],
)
def test_default_encoders_map_to_the_embedding_size(example: torch.Tensor, name: str) -> None:
    assert default_encoder_name(example) == name
    torch.manual_seed(0)
    enc = build_encoder("auto", example, embed_dim=24, vocab_size=30)
    enc.eval()
    out = enc(example if name != "transformer" else torch.randint(1, 30, (2, 16)))
    assert out.shape == (2, 24)
    assert torch.isfinite(out).all()


def test_unknown_encoder_lists_valid_names() -> None:
    with pytest.raises(KeyError, match=r"valid names: cnn1d, cnn2d, .*mlp, .*transformer"):
        build_encoder("resnet", torch.zeros(2, 3, 32, 32), 8)


def test_token_encoder_ignores_padding() -> None:
    torch.manual_seed(0)
    enc = build_encoder("transformer", torch.zeros(1, 8, dtype=torch.long), 6, vocab_size=20)
    enc.eval()
    short = torch.tensor([[1, 5, 6, 2, 0, 0, 0, 0]])
    other_pad_position_values = enc(short)
    # Same tokens, so same output; a fully padded (absent) caption stays finite.
    assert torch.allclose(enc(short.clone()), other_pad_position_values)
    assert torch.isfinite(enc(torch.zeros(1, 8, dtype=torch.long))).all()


def test_mean_fusion_averages_present_modalities_only() -> None:
    emb = {"a": torch.tensor([[1.0], [2.0], [5.0]]), "b": torch.tensor([[3.0], [4.0], [7.0]])}
    present = {"a": torch.tensor([True, False, False]), "b": torch.tensor([True, True, False])}
    assert MeanFusion()(emb, present).flatten().tolist() == [2.0, 4.0, 0.0]


def test_concat_fusion_zeroes_absent_and_flags_presence() -> None:
    emb = {"a": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([[3.0]])}
    fused = ConcatFusion()(emb, {"a": torch.tensor([False]), "b": torch.tensor([True])})
    assert fused.tolist() == [[0.0, 0.0, 3.0, 0.0, 1.0]]
    assert ConcatFusion().output_dim(4, 3) == 15


def test_late_fusion_prediction_does_not_depend_on_absent_inputs() -> None:
    torch.manual_seed(0)
    encoder = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
    model = LateFusionClassifier(encoder, ConcatFusion(), nn.Linear(10, 3))
    inputs = {"a": torch.randn(5, 3), "b": torch.randn(5, 2)}
    present = {"a": torch.ones(5, dtype=torch.bool), "b": torch.tensor([1, 0, 1, 0, 1]).bool()}
    logits = model(inputs, present)
    changed = {"a": inputs["a"], "b": inputs["b"] + 100 * torch.randn(5, 2)}
    logits2 = model(changed, present)
    absent = ~present["b"]
    assert torch.allclose(logits[absent], logits2[absent])
    assert not torch.allclose(logits[~absent], logits2[~absent])
    cached = model.classify(encoder(inputs), present)
    assert torch.allclose(cached, logits)
