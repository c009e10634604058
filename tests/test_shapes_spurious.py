"""The ``spurious`` shortcut option of the ``shapes`` dataset."""

from __future__ import annotations

import pytest
import torch

from modalab.data.shapes import make_shapes

CFG = {
    "n_samples": 4000,
    "carries": {"image": ["shape"], "text": []},
    "label_factors": ["shape"],
    "image_size": 16,
}


def agreement(splits, split: str) -> float:
    truth = splits.info.truth[split]
    rendered = truth.factor("colour", "text")
    label = getattr(splits, split).label
    return float((rendered == label % 4).double().mean())


def test_shortcut_rate_in_train_and_val_but_not_test() -> None:
    splits = make_shapes(
        **CFG, spurious_modality="text", spurious_factor="colour", spurious_rate=0.8
    )
    # P(agree) = rate + (1 - rate) / 4 with the shortcut, 1/4 without; n >= 600 per split.
    assert agreement(splits, "train") == pytest.approx(0.8 + 0.2 / 4, abs=0.04)
    assert agreement(splits, "val") == pytest.approx(0.8 + 0.2 / 4, abs=0.05)
    assert agreement(splits, "test") == pytest.approx(0.25, abs=0.05)
    # the caption really says the colour word of the label in train
    from modalab.data.shapes import VOCABULARY

    red = VOCABULARY.index("red")
    says_red = (splits.train.inputs["text"] == red).any(dim=1)
    assert float(says_red[splits.train.label == 0].double().mean()) > 0.75


def test_rate_zero_leaves_the_data_unchanged() -> None:
    plain = make_shapes(**CFG)
    zero = make_shapes(**CFG, spurious_modality="text", spurious_factor="colour", spurious_rate=0.0)
    for m in plain.modalities:
        assert torch.equal(plain.test.inputs[m], zero.test.inputs[m])
        assert torch.equal(plain.train.inputs[m], zero.train.inputs[m])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"spurious_modality": "audio"}, "not generated"),
        ({"spurious_modality": "image", "spurious_factor": "shape"}, "does not carry"),
        (
            {"spurious_modality": "text", "spurious_factor": "colour", "spurious_rate": 1.5},
            "probability",
        ),
    ],
)
def test_invalid_spurious_options(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_shapes(**CFG, **kwargs)
