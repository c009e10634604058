"""Noisy MNIST (``data=noisymnist``): the construction of Wang et al. (ICML 2015), checked."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from _real_data import shared_data_dir
from modalab.data.files import MissingDataError
from modalab.data.noisymnist import make_noisymnist, pair_different_same_label, rotate_images

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _idx(path, offset):
    return np.frombuffer(gzip.decompress(path.read_bytes()), dtype=np.uint8, offset=offset)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = shared_data_dir("mnist/train-images-idx3-ubyte.gz")
    cache = tmp_path_factory.mktemp("cache")
    splits = make_noisymnist(data_dir=str(root), cache_dir=str(cache), seed=5, max_train=0)
    # The original images, read independently of modalab (idx header: 16 / 8 bytes).
    mnist = {
        "train": (
            _idx(root / "mnist/train-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            _idx(root / "mnist/train-labels-idx1-ubyte.gz", 8),
        ),
        "test": (
            _idx(root / "mnist/t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            _idx(root / "mnist/t10k-labels-idx1-ubyte.gz", 8),
        ),
    }
    return root, cache, splits, mnist


def test_split_sizes_are_the_papers(built):
    _, _, splits, _ = built
    assert splits.info.sizes == {"train": 50000, "val": 10000, "test": 10000}
    train = set(splits.info.extra["mnist_index"]["train"].tolist())
    val = set(splits.info.extra["mnist_index"]["val"].tolist())
    assert not train & val and train | val == set(range(60000))
    assert splits.info.extra["mnist_index"]["test"].tolist() == list(range(10000))
    counts = np.bincount(splits.train.label.numpy(), minlength=10) + np.bincount(
        splits.val.label.numpy(), minlength=10
    )
    assert counts.tolist() == MNIST_TRAIN_COUNTS
    for split in (splits.train, splits.val, splits.test):
        assert split.inputs["rotated"].shape == (len(split), 784)
        assert split.inputs["noisy"].shape == (len(split), 784)


def test_view1_is_the_digit_rotated_within_plus_minus_pi_over_4(built):
    _, _, splits, mnist = built
    angle = splits.info.extra["angle"]["test"].numpy()
    assert angle.min() >= -math.pi / 4 and angle.max() <= math.pi / 4
    assert angle.min() < -0.75 and angle.max() > 0.75  # the whole range is used
    assert abs(angle.mean()) < 0.02  # uniform: mean 0, sd of the mean 0.0045
    images, labels = mnist["test"]
    assert (splits.test.label.numpy() == labels).all()
    # Independent reference: scipy's bilinear rotation, compared away from the corners that
    # leave the frame.
    centre = np.zeros((28, 28), bool)
    centre[6:22, 6:22] = True
    for i in (0, 17, 4242, 9999):
        ref = ndimage.rotate(images[i] / 255.0, math.degrees(angle[i]), reshape=False, order=1)
        got = splits.test.inputs["rotated"][i].view(28, 28).numpy()
        assert np.abs(got - ref)[centre].max() <= 0.5 / 255 + 1e-6


def test_view2_is_a_different_image_of_the_same_digit_plus_uniform_noise(built):
    _, _, splits, mnist = built
    partner = splits.info.extra["partner"]["test"].numpy()
    label = splits.test.label.numpy()
    assert (partner != np.arange(partner.size)).all()
    assert (label[partner] == label).all()
    clean = mnist["test"][0][partner].reshape(len(partner), 784) / 255.0
    noisy = splits.test.inputs["noisy"].numpy()
    added = noisy - clean
    assert noisy.min() >= 0 and noisy.max() <= 1
    assert added.min() >= -0.5 / 255 - 1e-6  # noise is non-negative (rounding to 8 bits aside)
    assert (noisy[clean == 1.0] == 1.0).all()  # truncated at 1
    # Background pixels (clean 0) carry the noise alone: uniform on [0, 1].
    background = noisy[clean == 0.0]
    assert abs(background.mean() - 0.5) < 0.005
    assert abs(np.quantile(background, 0.25) - 0.25) < 0.01
    assert abs(np.quantile(background, 0.9) - 0.9) < 0.01


def test_seeded_and_cached(built):
    root, cache, splits, _ = built
    again = make_noisymnist(data_dir=str(root), cache_dir=str(cache), seed=5, max_train=0)
    assert again.info.extra["from_cache"] and not splits.info.extra["from_cache"]
    assert torch.equal(again.test.inputs["noisy"], splits.test.inputs["noisy"])
    fresh = make_noisymnist(data_dir=str(root), use_cache=False, seed=5, flatten=False, max_train=0)
    assert fresh.test.inputs["rotated"].shape == (10000, 1, 28, 28)
    assert torch.equal(fresh.test.inputs["rotated"].flatten(1), splits.test.inputs["rotated"])


def test_default_keeps_a_stratified_10k_training_subset(built):
    root, cache, full, _ = built
    small = make_noisymnist(data_dir=str(root), cache_dir=str(cache), seed=5)
    assert small.info.sizes == {"train": 10000, "val": 10000, "test": 10000}
    rows = set(small.info.extra["mnist_index"]["train"].tolist())
    assert rows <= set(full.info.extra["mnist_index"]["train"].tolist())  # same 50k pool
    counts = np.bincount(small.train.label.numpy(), minlength=10)
    full_counts = np.bincount(full.train.label.numpy(), minlength=10)
    assert np.abs(counts - full_counts / 5).max() <= 1  # label proportions kept


def test_pairing_never_picks_itself_and_is_uniform_over_others():
    label = np.array([0, 0, 0, 1, 1])
    draws = np.stack(
        [pair_different_same_label(label, np.random.default_rng(s)) for s in range(3000)]
    )
    assert (draws != np.arange(5)).all() and (label[draws] == label).all()
    share = (draws[:, 0] == 1).mean()  # row 0's partner is 1 or 2, each half the time
    assert abs(share - 0.5) < 0.04
    with pytest.raises(ValueError, match="once"):
        pair_different_same_label(np.array([0, 0, 1]), np.random.default_rng(0))


def test_rotation_direction_and_identity():
    x = torch.zeros(1, 5, 5)
    x[0, 2, 4] = 1.0
    assert torch.allclose(rotate_images(x, torch.zeros(1)), x, atol=1e-6)
    up = rotate_images(x, torch.tensor([math.pi / 2]))
    assert up[0, 0, 2] > 0.99  # counter-clockwise on screen: right of centre → above it


def test_missing_training_split_is_a_clear_error(tmp_path):
    (tmp_path / "mnist").mkdir()
    with pytest.raises(MissingDataError, match=r"train-images-idx3-ubyte\.gz"):
        make_noisymnist(data_dir=str(tmp_path), use_cache=False)
