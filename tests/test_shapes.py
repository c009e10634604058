import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from modalab.data import ShapesConfig, generate_shapes, make_shapes
from modalab.data.shapes import FACTORS, VOCABULARY


def _bag_of_words(tokens: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.one_hot(tokens, len(VOCABULARY)).sum(1).float().numpy()


def _cv_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    half = len(y) // 2
    clf = LogisticRegression(max_iter=500).fit(x[:half], y[:half])
    return float(clf.score(x[half:], y[half:]))


def test_same_seed_same_data_other_seed_other_data() -> None:
    cfg = ShapesConfig(n_samples=200, seed=5)
    a, la, _ = generate_shapes(cfg)
    b, lb, _ = generate_shapes(ShapesConfig(n_samples=200, seed=5))
    c, _, _ = generate_shapes(ShapesConfig(n_samples=200, seed=6))
    for m in a:
        assert torch.equal(a[m], b[m])
    assert torch.equal(la, lb)
    assert not torch.equal(a["image"], c["image"])


def test_dropping_a_modality_keeps_the_others_labels_and_splits() -> None:
    # A unimodal baseline (data.modalities=[image]) must see the very samples of the
    # multimodal runs it is compared with (studies/transfer_fair.yaml's floor).
    both = make_shapes(n_samples=300, modalities=["text", "image"], seed=3)
    image = make_shapes(n_samples=300, modalities=["image"], seed=3)
    for split in ("train", "val", "test"):
        a, b = getattr(both, split), getattr(image, split)
        assert torch.equal(a.inputs["image"], b.inputs["image"])
        assert torch.equal(a.label, b.label) and torch.equal(a.index, b.index)
        assert set(b.inputs) == {"image"}


def test_shapes_and_splits() -> None:
    splits = make_shapes(n_samples=400, val_fraction=0.25, test_fraction=0.25)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (200, 100, 100)
    assert splits.train.inputs["image"].shape == (200, 3, 32, 32)
    assert splits.train.inputs["text"].dtype == torch.long
    assert splits.train.inputs["audio"].shape == (200, 1, 1024)
    ids = torch.cat([splits.train.index, splits.val.index, splits.test.index])
    assert sorted(ids.tolist()) == list(range(400))
    truth = splits.info.truth["test"]
    assert torch.equal(truth.factor("shape"), splits.test.label)


def test_text_predicts_a_carried_factor_but_not_an_uncarried_one() -> None:
    # Colour is carried by the image only: text renders colour from an independent draw.
    cfg = ShapesConfig(
        n_samples=2000,
        carries={"image": ["shape", "colour"], "text": ["shape"]},
        noise={"image": 0.1, "text": 0.0},
        label_factors=["colour"],
    )
    inputs, _, truth = generate_shapes(cfg)
    x = _bag_of_words(inputs["text"])
    shape = truth.factor("shape").numpy()
    colour = truth.factor("colour").numpy()
    assert _cv_accuracy(x, shape) > 0.98  # carried: the word is in the caption
    chance = 1 / FACTORS["colour"]
    # Uncarried: accuracy within sampling error of chance (1000 test samples, sd ≈ 0.014).
    assert abs(_cv_accuracy(x, colour) - chance) < 0.05
    # ... but the text's own (nuisance) colour word is what it renders.
    assert _cv_accuracy(x, truth.factor("colour", "text").numpy()) > 0.98
    # The image does carry colour: mean pixel colour predicts it.
    mean_rgb = inputs["image"].amax(dim=(2, 3)).numpy()
    assert _cv_accuracy(mean_rgb, colour) > 0.9


def test_audio_renders_pitch_from_colour() -> None:
    cfg = ShapesConfig(n_samples=400, carries={"audio": ["colour"]}, noise={"audio": 0.0})
    inputs, _, truth = generate_shapes(cfg)
    spectrum = torch.fft.rfft(inputs["audio"][:, 0], dim=1).abs()
    freqs = torch.fft.rfftfreq(1024, d=1 / 4000)
    bases = torch.tensor([250.0, 330.0, 410.0, 530.0])
    # Energy in a ±20 Hz band around each candidate fundamental; the loudest is the pitch.
    bands = (freqs.view(1, -1) - bases.view(-1, 1)).abs() <= 20
    energy = spectrum.pow(2) @ bands.float().t()
    assert torch.equal(energy.argmax(1), truth.factor("colour"))


def test_sum_mod_label_is_independent_of_each_factor() -> None:
    cfg = ShapesConfig(
        n_samples=8000,
        carries={"image": ["shape"], "text": ["colour"]},
        label_factors=["shape", "colour"],
        label_rule="sum_mod",
    )
    _, label, truth = generate_shapes(cfg)
    assert torch.equal(label, (truth.factor("shape") + truth.factor("colour")) % 4)
    for factor in ("shape", "colour"):
        table = torch.zeros(4, 4)
        table.index_put_((truth.factor(factor), label), torch.ones(len(label)), accumulate=True)
        conditional = table / table.sum(1, keepdim=True)
        assert torch.allclose(conditional, torch.full((4, 4), 0.25), atol=0.04)


def test_joint_label_counts_all_combinations() -> None:
    _, label, truth = generate_shapes(
        ShapesConfig(n_samples=500, label_factors=["shape", "size"], label_rule="joint")
    )
    assert truth.num_classes == 12
    assert torch.equal(label, truth.factor("shape") * 3 + truth.factor("size"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"carries": {"video": ["shape"]}}, "unknown modality 'video'"),
        ({"carries": {"image": ["hue"]}}, "unknown factor 'hue'"),
        ({"label_rule": "xor"}, "label_rule='xor' is unknown"),
        ({"noise": {"text": 1.5}}, r"noise.text=1.5 is out of range"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "sum to less than 1"),
        ({"label_factors": ["shape", "colour"]}, "identity needs exactly one"),
    ],
)
def test_invalid_configs_are_rejected(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ShapesConfig(**changes).validate()


def test_generation_speed_is_seconds_for_10k() -> None:
    import time

    start = time.perf_counter()
    generate_shapes(ShapesConfig(n_samples=10_000))
    assert time.perf_counter() - start < 20  # generous bound for a loaded 2-core CI machine


def test_modalities_selects_what_is_generated_and_uncarried_means_nuisance() -> None:
    cfg = ShapesConfig(n_samples=300, modalities=["image", "audio"], carries={"image": ["shape"]})
    inputs, _, truth = generate_shapes(cfg)
    assert sorted(inputs) == ["audio", "image"]
    assert truth.carries == {"image": ["shape"], "audio": []}
    assert torch.equal(truth.factor("shape", "image"), truth.factor("shape"))
    # audio carries nothing: its rendered shape agrees with the latent one only by chance.
    agreement = (truth.factor("shape", "audio") == truth.factor("shape")).float().mean()
    assert abs(agreement.item() - 0.25) < 0.08


def test_tabular_modality_is_one_hot_factor_codes_plus_noise() -> None:
    cfg = ShapesConfig(
        n_samples=200,
        modalities=["tabular"],
        noise={"tabular": 0.0},
        carries={"tabular": ["shape", "size"]},
    )
    inputs, _, truth = generate_shapes(cfg)
    x = inputs["tabular"]
    assert x.shape == (200, 15)
    assert torch.equal(x[:, :4].argmax(1), truth.factor("shape"))
    assert torch.equal(x[:, 8:11].argmax(1), truth.factor("size"))
    assert torch.equal(x.sum(1), torch.full((200,), 4.0))
