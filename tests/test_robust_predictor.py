"""The counterfactual view of a `supervised_robust` model (an EmbeddingClassifier) is the model."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modalab.counterfactual import FusionModelPredictor, coalition_values, encode_dataset
from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.methods.robust_fusion import RobustFusionMethod
from modalab.models.multimodal import EmbeddingClassifier, MultimodalEncoder


@pytest.mark.parametrize("fill", ["zero", "absent", "impute"])
def test_predictions_with_absent_modalities_equal_the_method(fill: str) -> None:
    torch.manual_seed(0)
    encoder = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
    method = RobustFusionMethod(encoder, num_classes=3, embed_dim=4, fill=fill, hidden=8)
    inputs = {"a": torch.randn(6, 3), "b": torch.randn(6, 2)}
    present = {
        "a": torch.tensor([1, 0, 1, 1, 0, 1]).bool(),
        "b": torch.tensor([1, 1, 0, 1, 1, 0]).bool(),
    }
    batch = MultimodalBatch.from_inputs(inputs, present=present)
    assert isinstance(method, EmbeddingClassifier)
    predictor = FusionModelPredictor(method)
    assert predictor.modalities == ("a", "b")
    with torch.no_grad():
        expected = method(batch)
    assert torch.allclose(predictor.predict(predictor.encode(batch), batch.present), expected)
    # the empty coalition is the model with every modality absent, as the method computes it
    data = MultimodalTensorDataset(inputs, torch.tensor([0, 1, 2, 0, 1, 2]), num_classes=3)
    values = coalition_values(predictor, encode_dataset(predictor, data), metric="log_prob")
    none = {m: torch.zeros(6, dtype=torch.bool) for m in inputs}
    with torch.no_grad():
        logits = method(MultimodalBatch.from_inputs(inputs, present=none))
    truth = logits.log_softmax(1)[torch.arange(6), data.label]
    assert torch.allclose(values.empty.float(), truth.float(), atol=1e-6)
