"""Counterfactual attributions validated against the known truth of the ``shapes`` data.

Each test trains a small model on a ``shapes`` configuration whose information structure is
known, then checks the attributions on the test split (500 samples of 2000).

Tolerances: a mean over 500 samples of per-sample accuracies has a standard error of at most
0.022, so a bound 0.1 away from the ideal value is >4 standard errors; the rest of the slack
covers the imperfection of a model trained for a few seconds (its accuracy is 0.93-0.99, so
the ideal Shapley share of an uninformative modality is not exactly 0).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.counterfactual import (
    FrozenEncoderPredictor,
    FusionModelPredictor,
    coalition_values,
    counterfactual_debias,
    encode_dataset,
    fit_fused_head,
    perceptual_score,
    shapley_from_coalitions,
    swap_test,
)
from modalab.data.batch import MultimodalBatch
from modalab.data.shapes import VOCABULARY, make_shapes
from modalab.data.tensor_dataset import MultimodalTensorDataset, Splits, make_loader
from modalab.experiments.build import build_encoders, build_method

pytestmark = pytest.mark.slow

BASE = {"n_samples": 2000, "image_size": 16, "seed": 0}


def with_modality_dropout(dataset: MultimodalTensorDataset, rate: float, seed: int):
    """Each modality of each training sample absent with probability ``rate``."""
    g = torch.Generator().manual_seed(seed)
    present = {m: torch.rand(len(dataset), generator=g) >= rate for m in dataset.modalities}
    return MultimodalTensorDataset(
        dataset.inputs,
        dataset.label,
        present=present,
        index=dataset.index,
        num_classes=dataset.num_classes,
    )


def train_fusion(splits: Splits, epochs: int) -> FusionModelPredictor:
    L.seed_everything(0, verbose=False)
    encoder = build_encoders({"embed_dim": 32}, splits)
    method = build_method({"name": "supervised", "hidden": 64}, encoder, splits, 32)
    trainer = L.Trainer(
        max_epochs=epochs,
        enable_progress_bar=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    loader = make_loader(with_modality_dropout(splits.train, 0.3, 1), 64, shuffle=True)
    trainer.fit(method, loader)
    return FusionModelPredictor(method.model)


def pooled(table, statistic: str) -> dict[str, float]:
    rows = table[(table["class"] == "all") & (table["statistic"] == statistic)]
    return dict(zip(rows["modality"], rows["value"]))


def test_unique_information_goes_to_its_modality() -> None:
    # label = colour; only the image carries colour, the text carries an unrelated factor.
    splits = make_shapes(
        **BASE, carries={"image": ["colour"], "text": ["shape"]}, label_factors=["colour"]
    )
    predictor = train_fusion(splits, epochs=3)
    test = encode_dataset(predictor, splits.test)
    values = coalition_values(predictor, test)
    result = shapley_from_coalitions(values)
    assert float(values.full.mean()) > 0.9
    shares = result.shares()
    assert shares["image"] > 0.9 and abs(shares["text"]) < 0.1
    assert abs(result.interaction("image", "text")) < 0.1
    assert torch.allclose(result.values.sum(1), result.full - result.empty, atol=1e-12)
    scores = pooled(perceptual_score(predictor, test), "perceptual_score_normalised")
    assert scores["image"] > 0.6 and abs(scores["text"]) < 0.05
    image_swap = pooled(swap_test(predictor, test, "image"), "follows_swapped")
    text_swap = pooled(swap_test(predictor, test, "text"), "follows_original")
    assert image_swap["image"] > 0.85 and text_swap["text"] > 0.85


def test_redundant_information_is_shared_equally() -> None:
    splits = make_shapes(
        **BASE,
        carries={"image": ["colour"], "text": ["colour"]},
        label_factors=["colour"],
        noise={"image": 0.1, "text": 0.0},
    )
    predictor = train_fusion(splits, epochs=3)
    result = shapley_from_coalitions(
        coalition_values(predictor, encode_dataset(predictor, splits.test))
    )
    shares = result.shares()
    assert shares["image"] == pytest.approx(0.5, abs=0.1)
    assert shares["text"] == pytest.approx(0.5, abs=0.1)
    # redundancy: the pair is worth less than its parts (ideal: -(1 - 1/4) = -0.75)
    assert result.interaction("image", "text") < -0.5


def simple_features(batch: MultimodalBatch) -> dict[str, Tensor]:
    """Fixed (frozen) features: mean RGB of the image, bag of words of the caption."""
    return {
        "image": batch.inputs["image"].mean(dim=(2, 3)),
        "text": F.one_hot(batch.inputs["text"], len(VOCABULARY)).sum(1).float(),
    }


def test_synergy_shows_as_interaction() -> None:
    # label = (colour + shape) mod 4, colour only in the image, shape only in the text: each
    # modality alone is at chance, together they determine the label. End-to-end training
    # does not find this XOR in seconds, so the predictor is a head on frozen features.
    splits = make_shapes(
        **BASE,
        carries={"image": ["colour"], "text": ["shape"]},
        label_factors=["shape", "colour"],
        label_rule="sum_mod",
        noise={"image": 0.05, "text": 0.0},
    )
    frozen = FrozenEncoderPredictor(simple_features, torch.nn.Identity(), ["image", "text"])
    head = fit_fused_head(encode_dataset(frozen, splits.train), hidden=128, epochs=150)
    predictor = FrozenEncoderPredictor(simple_features, head, ["image", "text"])
    values = coalition_values(predictor, encode_dataset(predictor, splits.test))
    result = shapley_from_coalitions(values)
    empty = float(values.empty.mean())
    assert float(values.full.mean()) > 0.85
    assert abs(float(values.value(["image"]).mean()) - empty) < 0.1
    assert abs(float(values.value(["text"]).mean()) - empty) < 0.1
    interaction = result.interaction("image", "text")
    assert interaction > 0.5  # ideal: 1 - 1/4 = 0.75
    # for two players phi_m = I / 2 + (v({m}) - v(empty)): the main effects are phi_m - I / 2
    main_effects = result.values.mean(0) - interaction / 2
    assert interaction > 4 * float(main_effects.abs().max())
    shares = result.shares()
    assert shares["image"] == pytest.approx(0.5, abs=0.15)


def test_counterfactual_debiasing_removes_a_spurious_shortcut() -> None:
    # label = shape, carried by the image only; the text's colour equals the label in 90% of
    # training samples and is independent of it in the test split.
    splits = make_shapes(
        n_samples=3000,
        image_size=16,
        seed=0,
        carries={"image": ["shape"], "text": []},
        label_factors=["shape"],
        noise={"image": 0.2, "text": 0.0},
        spurious_modality="text",
        spurious_factor="colour",
        spurious_rate=0.9,
    )
    predictor = train_fusion(splits, epochs=6)
    val = counterfactual_debias(predictor, encode_dataset(predictor, splits.val), "text")
    test = counterfactual_debias(predictor, encode_dataset(predictor, splits.test), "text")
    assert val.accuracy > test.accuracy + 0.3  # the model took the shortcut
    assert test.debiased_accuracy > test.accuracy + 0.08
