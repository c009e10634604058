import numpy as np
import pytest
import scipy.stats
import torch

from _real_data import shared_data_dir
from modalab.data.files import CorruptDataError, MissingDataError
from modalab.data.medmnist import fourier_view, make_pneumoniamnist, radiomics_features


def test_pneumoniamnist_shapes_labels_and_provenance():
    root = shared_data_dir("medmnist/pneumoniamnist.npz")
    splits = make_pneumoniamnist(data_dir=str(root))
    raw = np.load(root / "medmnist" / "pneumoniamnist.npz")
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        n = raw[f"{name}_images"].shape[0]
        assert split.inputs["image"].shape == (n, 1, 28, 28)
        assert split.inputs["spectrum"].shape == (n, 1, 28, 28)
        np.testing.assert_allclose(
            split.inputs["image"][:, 0].numpy(), raw[f"{name}_images"] / 255.0, atol=1e-6
        )
        counts = np.bincount(raw[f"{name}_labels"][:, 0], minlength=2).tolist()
        assert splits.info.label_counts[name] == counts
    assert splits.info.label_counts["train"] == [1214, 1214]  # the balanced subset
    assert splits.info.extra["official_file"] is False  # a subset, not the Zenodo release
    assert "computed from the image" in splits.info.extra["derived_note"]


def test_official_splits_file_and_resize():
    root = shared_data_dir("medmnist_official_splits/pneumoniamnist.npz")
    splits = make_pneumoniamnist(
        data_dir=str(root),
        derived="radiomics",
        image_size=32,
        file="medmnist_official_splits/pneumoniamnist.npz",
    )
    assert splits.info.sizes == {"train": 3882, "val": 524, "test": 624}
    assert splits.train.inputs["image"].shape[1:] == (1, 32, 32)
    assert splits.train.inputs["radiomics"].shape == (3882, 16)
    # Standardised with the training statistics.
    assert torch.allclose(splits.train.inputs["radiomics"].mean(0), torch.zeros(16), atol=1e-4)


def test_radiomics_against_scipy():
    rng = np.random.default_rng(0)
    images = rng.beta(2, 5, size=(3, 1, 12, 12)).astype(np.float32)
    feats = radiomics_features(torch.from_numpy(images)).double().numpy()
    flat = images.reshape(3, -1).astype(np.float64)
    np.testing.assert_allclose(feats[:, 0], flat.mean(1), rtol=1e-5)
    np.testing.assert_allclose(feats[:, 1], flat.std(1), rtol=1e-5)
    np.testing.assert_allclose(feats[:, 2], scipy.stats.skew(flat, axis=1), rtol=1e-4)
    np.testing.assert_allclose(feats[:, 3], scipy.stats.kurtosis(flat, axis=1), rtol=1e-4)
    np.testing.assert_allclose(feats[:, 6], np.percentile(flat, 50, axis=1), rtol=1e-5)
    hist = np.stack([np.bincount(np.round(f * 31).astype(int), minlength=32) for f in flat])
    p = hist / flat.shape[1]
    entropy = -(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0)).sum(1)
    np.testing.assert_allclose(feats[:, 9], entropy, rtol=1e-5)


def test_fourier_view_against_numpy():
    image = np.random.default_rng(1).random((1, 1, 8, 8))
    ref = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(image[0, 0]))))
    ref = (ref - ref.mean()) / ref.std(ddof=1)
    np.testing.assert_allclose(fourier_view(torch.from_numpy(image))[0, 0].numpy(), ref, atol=1e-6)


def test_missing_and_malformed_npz(tmp_path):
    with pytest.raises(MissingDataError, match=r"pneumoniamnist.npz"):
        make_pneumoniamnist(data_dir=str(tmp_path))
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "pneumoniamnist.npz", train_images=np.zeros((2, 4, 4)))
    with pytest.raises(CorruptDataError, match=r"missing arrays"):
        make_pneumoniamnist(data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"data.derived"):
        make_pneumoniamnist(data_dir=str(tmp_path), derived="xray2")
