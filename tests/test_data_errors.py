"""Fault injection for dataset files: each bad file is an error naming the file and the problem,
unless ``data.on_error=skip`` asks to drop bad files, which are then counted and reported.

Complements tests/test_data_files.py (idx magic, truncated idx/gzip/wav, wrong sample rate,
missing files, checksums), tests/test_medmnist.py, tests/test_captions.py and
tests/test_memmap.py.
"""

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _real_data import shared_data_dir
from modalab.data.avmnist import make_avmnist
from modalab.data.captions import make_coco, make_manifest
from modalab.data.files import CorruptDataError, MissingDataError
from modalab.data.medmnist import make_pneumoniamnist


def _idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _mnist(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    (root / "mnist").mkdir(parents=True)
    _idx(root / "mnist" / "t10k-images-idx3-ubyte.gz", 2051, images)
    _idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz", 2049, labels)


def test_mnist_images_of_the_wrong_shape(tmp_path: Path) -> None:
    _mnist(tmp_path, np.zeros((4, 27, 28)), np.arange(4))
    with pytest.raises(
        CorruptDataError, match=r"t10k-images-idx3-ubyte.gz: images of shape \(27, 28\)"
    ):
        make_avmnist(data_dir=str(tmp_path), use_cache=False)


def test_mnist_labels_out_of_range(tmp_path: Path) -> None:
    _mnist(tmp_path, np.zeros((4, 28, 28)), np.array([0, 3, 12, 1]))
    with pytest.raises(
        CorruptDataError, match=r"t10k-labels-idx1-ubyte.gz: label 12 at row 2 is out of range"
    ):
        make_avmnist(data_dir=str(tmp_path), use_cache=False)


def _npz(root: Path, **overrides: np.ndarray) -> None:
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = np.zeros((6, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array([[0], [1]] * 3)
    arrays.update(overrides)
    (root / "medmnist").mkdir(exist_ok=True)
    np.savez(root / "medmnist" / "pneumoniamnist.npz", **arrays)


def test_medmnist_negative_labels_and_mixed_image_sizes(tmp_path: Path) -> None:
    _npz(tmp_path, val_labels=np.array([[0], [-1]] * 3))
    with pytest.raises(CorruptDataError, match=r"npz: val_labels holds the negative"):
        make_pneumoniamnist(data_dir=str(tmp_path))
    _npz(tmp_path, test_images=np.zeros((6, 9, 9), dtype=np.uint8))
    with pytest.raises(CorruptDataError, match=r"images of different sizes .*'test': \(9, 9\)"):
        make_pneumoniamnist(data_dir=str(tmp_path))
    _npz(tmp_path, train_images=np.zeros((6, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(CorruptDataError, match=r"train_images is uint8 \(6, 8, 8, 3\)"):
        make_pneumoniamnist(data_dir=str(tmp_path))


def _manifest(root: Path, n_good: int, extra: list[str]) -> Path:
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    names = []
    for i in range(n_good):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(
            root / "img" / f"{i}.png"
        )
        names.append(f"img/{i}.png")
    rows = [
        {"filepath": name, "title": f"caption {i}", "label": str(i % 2)}
        for i, name in enumerate(names + extra)
    ]
    path = root / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_empty_manifest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("filepath,title\n")
    with pytest.raises(CorruptDataError, match=r"m.csv: the manifest has no rows"):
        make_manifest(path=str(tmp_path / "m.csv"))


def test_unreadable_manifest_image_is_named(tmp_path: Path) -> None:
    path = _manifest(tmp_path, 12, ["img/broken.png"])
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CorruptDataError, match=r"broken.png: not a readable image"):
        make_manifest(path=str(path), label_key="label", image_size=16)


def test_on_error_skip_drops_and_counts_bad_images(tmp_path: Path) -> None:
    path = _manifest(tmp_path, 12, ["img/broken.png", "img/absent.png"])
    (tmp_path / "img" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(MissingDataError, match=r"absent.png.*data.on_error=skip"):
        make_manifest(path=str(path), label_key="label", image_size=16)
    with pytest.warns(UserWarning, match=r"skipped 2 bad file\(s\)"):
        splits = make_manifest(
            path=str(path), label_key="label", image_size=16, captions_per_image=1, on_error="skip"
        )
    skipped = splits.info.skipped
    assert skipped["count"] == 2
    assert sorted(Path(f).name for f in skipped["files"]) == ["absent.png", "broken.png"]
    assert sum(splits.info.extra["images"].values()) == 12
    assert sorted(splits.info.extra["image_ids"]) == sorted(f"img/{i}.png" for i in range(12))
    with pytest.raises(ValueError, match=r"data.on_error='ignore' is unknown; valid"):
        make_manifest(path=str(path), on_error="ignore")


@pytest.mark.slow
def test_avmnist_on_error_skip_drops_and_counts_corrupt_recordings(tmp_path: Path) -> None:
    shared = shared_data_dir("mnist", "fsdd/recordings", "esc10/meta")
    (tmp_path / "mnist").mkdir()
    for f in (shared / "mnist").iterdir():
        os.symlink(f, tmp_path / "mnist" / f.name)
    os.symlink(shared / "esc10", tmp_path / "esc10")
    recordings = tmp_path / "fsdd" / "recordings"
    recordings.mkdir(parents=True)
    for f in (shared / "fsdd" / "recordings").iterdir():
        os.symlink(f, recordings / f.name)
    total = len(list(recordings.glob("*.wav")))
    for name in ("7_lucas_3.wav", "2_jackson_10.wav"):
        data = (recordings / name).read_bytes()
        (recordings / name).unlink()
        (recordings / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match=r"2_jackson_10.wav: truncated.*on_error=skip"):
        make_avmnist(data_dir=str(tmp_path), use_cache=False, max_images=300)
    with pytest.warns(UserWarning, match=r"avmnist: data.on_error=skip skipped 2 bad file"):
        splits = make_avmnist(
            data_dir=str(tmp_path), use_cache=False, max_images=300, on_error="skip"
        )
    assert splits.info.skipped["count"] == 2
    assert len(splits.info.extra["recordings"]) == total - 2
    assert "7_lucas_3.wav" not in splits.info.extra["recordings"]


@pytest.mark.slow
def test_coco_unreadable_image_named_or_skipped_and_counted(tmp_path: Path) -> None:
    shared = shared_data_dir("coco_mini/annotations_full") / "coco_mini"
    root = tmp_path / "coco_mini"
    for folder in ("annotations", "annotations_full", "train2017", "val2017"):
        (root / folder).mkdir(parents=True)
        for f in (shared / folder).iterdir():
            os.symlink(f, root / folder / f.name)
    victim = sorted((root / "val2017").iterdir())[0]
    victim.unlink()
    victim.write_bytes(b"\xff\xd8 not a jpeg")
    kwargs = {
        "data_dir": str(tmp_path),
        "folder": "coco_mini",
        "annotation_dirs": ["annotations", "annotations_full"],
        "image_size": 16,
    }
    with pytest.raises(CorruptDataError, match=rf"{victim.name}: not a readable image"):
        make_coco(**kwargs)
    with pytest.warns(UserWarning, match=r"coco: data.on_error=skip skipped 1 bad file"):
        splits = make_coco(**kwargs, on_error="skip")
    assert splits.info.skipped["files"] == [str(victim)]
    assert f"val2017/{victim.name}" not in splits.info.extra["image_ids"]
    assert (
        len(splits.info.extra["image_ids"])
        == len(list((shared / "val2017").iterdir()))
        + len(list((shared / "train2017").iterdir()))
        - 1
    )
