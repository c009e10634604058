import gzip
import os
from collections import Counter

import numpy as np
import pytest
import torch
from transformers.audio_utils import mel_filter_bank

from _real_data import shared_data_dir
from modalab.data.avmnist import log_mel_spectrogram, make_avmnist, pair_by_label

# Per-digit counts of the MNIST splits (from their labels files, as documented by the source).
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture(scope="module")
def avmnist(tmp_path_factory):
    """The clean protocol (raw pixels, speaker-disjoint log-mel), built once from the real files."""
    root = shared_data_dir("mnist/train-images-idx3-ubyte.gz", "fsdd/recordings")
    cache = tmp_path_factory.mktemp("cache")
    return root, cache, make_avmnist(data_dir=str(root), cache_dir=str(cache), protocol="clean")


@pytest.mark.slow
def test_multibench_protocol_on_the_real_files(tmp_path):
    """The default protocol: 55,000 / 5,000 / 10,000, writers of MNIST train vs test, noisy
    112x112 spectrograms of a test speaker never heard in training (about a minute to build)."""
    root = shared_data_dir("mnist/train-images-idx3-ubyte.gz", "fsdd/recordings", "esc10/meta")
    splits = make_avmnist(data_dir=str(root), cache_dir=str(tmp_path))
    assert splits.info.extra["protocol"] == "multibench"
    assert splits.info.sizes == {"train": 55000, "val": 5000, "test": 10000}
    assert splits.info.extra["image_index"]["train"].tolist() == list(range(55000))
    assert splits.info.extra["image_origin"] == {"train": "train", "val": "train", "test": "t10k"}
    labels = torch.cat([splits.train.label, splits.val.label])
    assert torch.bincount(labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(splits.test.label, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert splits.info.extra["speakers"]["test"] == ["yweweler"]
    speakers = splits.info.extra["speakers"]
    assert "yweweler" not in speakers["train"] + speakers["val"]
    assert splits.train.__getitems__([0]).inputs["audio"].shape == (1, 1, 112, 112)
    assert splits.info.extra["pca"]["train"]["kept_variance"] <= 0.25
    assert splits.info.extra["cache_bytes"] <= 400 * 2**20


def _speaker(name: str) -> str:
    return name.split("_")[1]


def _digit(name: str) -> int:
    return int(name.split("_")[0])


def test_shapes_sizes_and_label_balance(avmnist):
    _, _, splits = avmnist
    sizes = splits.info.sizes
    # MNIST train (60,000) → a seeded 10% validation, MNIST test (10,000) → test.
    assert sizes == {"train": 54000, "val": 6000, "test": 10000}
    for split in (splits.train, splits.val, splits.test):
        n = len(split)
        batch = split.__getitems__(torch.arange(0, n, 7))
        assert batch.inputs["image"].shape[1:] == (1, 28, 28)
        assert batch.inputs["audio"].shape[1:] == (1, 40, 101)
        assert batch.inputs["image"].min() >= 0 and batch.inputs["image"].max() <= 1
    labels = torch.cat([splits.train.label, splits.val.label])
    assert torch.bincount(labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(splits.test.label, minlength=10).tolist() == MNIST_TEST_COUNTS
    train_rows = set(splits.info.extra["image_index"]["train"].tolist())
    assert not train_rows & set(splits.info.extra["image_index"]["val"].tolist())
    assert splits.info.extra["image_origin"] == {"train": "train", "val": "train", "test": "t10k"}


def test_images_are_the_mnist_pixels(avmnist):
    root, _, splits = avmnist
    raw = gzip.open(root / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(
        gzip.open(root / "mnist" / "t10k-labels-idx1-ubyte.gz").read(), dtype=np.uint8, offset=8
    )
    rows = splits.info.extra["image_index"]["test"].numpy()
    np.testing.assert_allclose(
        splits.test.inputs["image"][:, 0].numpy(), pixels[rows] / 255.0, atol=1e-7
    )
    np.testing.assert_array_equal(splits.test.label.numpy(), labels[rows])


def test_pairing_by_label_and_speaker_disjoint(avmnist):
    _, _, splits = avmnist
    names = splits.info.extra["recordings"]
    speakers = {}
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        recs = splits.info.extra["recording"][name].tolist()
        assert [_digit(names[r]) for r in recs] == split.label.tolist()
        speakers[name] = {_speaker(names[r]) for r in recs}
        # Each recording of a digit is used about equally often within the split.
        uses = Counter(recs)
        for digit in range(10):
            pool = [
                i
                for i, n in enumerate(names)
                if _digit(n) == digit and _speaker(n) in speakers[name]
            ]
            counts = [uses.get(i, 0) for i in pool]
            assert max(counts) - min(counts) <= 1
    assert speakers["test"] == {"theo"} and speakers["val"] == {"nicolas"}
    assert speakers["train"] == {"george", "jackson", "lucas", "yweweler"}


def test_deterministic_pairing_and_cache(avmnist):
    root, cache, splits = avmnist
    again = make_avmnist(data_dir=str(root), cache_dir=str(cache), protocol="clean")
    assert again.info.extra["from_cache"]
    rebuilt = make_avmnist(data_dir=str(root), use_cache=False, protocol="clean")
    assert not rebuilt.info.extra["from_cache"]
    rows = torch.arange(0, 10000, 3)
    for a, b in ((splits.train, rebuilt.train), (splits.test, again.test)):
        x, y = a.__getitems__(rows), b.__getitems__(rows)
        assert torch.equal(x.inputs["audio"], y.inputs["audio"])
        assert torch.equal(x.inputs["image"], y.inputs["image"])
    recording = splits.info.extra["recording"]
    assert torch.equal(recording["train"], rebuilt.info.extra["recording"]["train"])
    other = make_avmnist(
        data_dir=str(root), seed=1, max_images=600, use_cache=False, protocol="clean"
    )
    assert sum(other.info.sizes.values()) == 600
    assert not torch.equal(
        other.info.extra["recording"]["test"][:50], splits.info.extra["recording"]["test"][:50]
    )


def test_unknown_speaker_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown speakers"):
        make_avmnist(test_speakers=["alice"])


def _reference_log_mel(signal, sr, n_fft, hop, win, n_mels):
    padded = np.pad(signal, n_fft // 2, mode="reflect")
    window = np.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start : start + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    frames = [padded[i : i + n_fft] * window for i in range(0, len(padded) - n_fft + 1, hop)]
    power = np.abs(np.fft.rfft(np.array(frames), axis=1)) ** 2  # [frames, freq]
    fb = mel_filter_bank(n_fft // 2 + 1, n_mels, 0.0, sr / 2, sr, norm="slaney", mel_scale="slaney")
    return np.log(power @ fb + 1e-6).T


def test_log_mel_matches_numpy_reference():
    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(4000)
    ours = log_mel_spectrogram(torch.tensor(signal[None]), 8000, 256, 80, 200, 40)[0]
    ref = _reference_log_mel(signal, 8000, 256, 80, 200, 40)
    assert ours.shape == ref.shape == (40, 51)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    # The 440 Hz tone lands in the mel band whose centre is closest to 440 Hz.
    assert abs(int(ours.mean(1).argmax()) - 9) <= 2


def test_pair_by_label_uses_pool_evenly():
    image_label = np.array([0] * 7 + [1] * 3)
    audio_label = np.array([0, 0, 0, 1, 1])
    pairs = pair_by_label(image_label, audio_label, seed=3)
    assert (audio_label[pairs] == image_label).all()
    assert sorted(Counter(pairs[:7].tolist()).values()) == [2, 2, 3]
    assert np.array_equal(pairs, pair_by_label(image_label, audio_label, seed=3))
    with pytest.raises(ValueError, match=r"No recording of label 2"):
        pair_by_label(np.array([2]), audio_label, seed=0)


@pytest.mark.parametrize("layout", ["train_only", "both"])
def test_mnist_split_layouts(tmp_path, layout):
    """The MNIST files present decide the image protocol (links stand in for the train files)."""
    import os

    root = shared_data_dir("mnist", "fsdd/recordings")
    (tmp_path / "mnist").mkdir()
    os.symlink(root / "fsdd", tmp_path / "fsdd")
    for kind in ("images-idx3", "labels-idx1"):
        source = root / "mnist" / f"t10k-{kind}-ubyte.gz"
        os.symlink(source, tmp_path / "mnist" / f"train-{kind}-ubyte.gz")
        if layout == "both":
            os.symlink(source, tmp_path / "mnist" / f"t10k-{kind}-ubyte.gz")
    splits = make_avmnist(data_dir=str(tmp_path), use_cache=False, protocol="clean")
    if layout == "both":
        assert splits.info.sizes == {"train": 9000, "val": 1000, "test": 10000}
        assert set(splits.info.extra["image_origin"].values()) == {"train", "t10k"}
    else:
        assert splits.info.sizes == {"train": 6000, "val": 1000, "test": 3000}
        assert set(splits.info.extra["image_origin"].values()) == {"train"}
    train_rows = set(splits.info.extra["image_index"]["train"].tolist())
    assert not train_rows & set(splits.info.extra["image_index"]["val"].tolist())


def test_unreadable_cache_is_rebuilt_with_a_warning(avmnist):
    root, cache, splits = avmnist
    path = splits.info.extra["cache_path"]
    # Replaced by a truncated copy (a new file, as a crashed writer or a bad disk copy would
    # leave): the fixture's datasets still map the old file, which must not change under them.
    with open(path, "rb") as handle:
        head = handle.read(1000)
    with open(f"{path}.tmp", "wb") as handle:
        handle.write(head)
    os.replace(f"{path}.tmp", path)
    with pytest.warns(UserWarning, match="unreadable AV-MNIST cache"):
        rebuilt = make_avmnist(data_dir=str(root), cache_dir=str(cache), protocol="clean")
    assert not rebuilt.info.extra["from_cache"]
    assert torch.equal(rebuilt.test.pools["audio"], splits.test.pools["audio"])
    again = make_avmnist(data_dir=str(root), cache_dir=str(cache), protocol="clean")
    assert again.info.extra["from_cache"]
