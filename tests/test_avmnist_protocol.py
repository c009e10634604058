"""AV-MNIST protocol on small generated fixtures: PCA energy removal against numpy's SVD, the
112x112 spectrogram geometry against brute force, split rules, the cache (unique spectrograms +
index, cached == rebuilt, skipped files kept), and the FSDD reader's bad-file cases."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import spectrogram

from modalab.data.avmnist import (
    FSDD_SPEAKERS,
    make_avmnist,
    mfas_segments,
    mfas_spectrogram,
    pca_energy_removal,
    read_wav,
)
from modalab.data.files import CorruptDataError
from modalab.data.indexed import IndexedMultimodalDataset


def _idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fixture(root: Path, takes: int = 4, n_train: int = 240, n_test: int = 60) -> Path:
    """MNIST-like idx files (train + test), FSDD-like tones for 6 speakers, 5 ESC-like clips."""
    rng = np.random.default_rng(0)
    (root / "mnist").mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[np.arange(n), labels, :] = 255  # a label-dependent stripe
        _idx(root / "mnist" / f"{prefix}-images-idx3-ubyte.gz", 2051, images)
        _idx(root / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", 2049, labels)
    rec = root / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for digit in range(10):
        for s, speaker in enumerate(FSDD_SPEAKERS):
            for take in range(takes):
                n = 2000 + 37 * take + 11 * s
                t = np.arange(n) / 8000
                tone = 0.3 * np.sin(2 * np.pi * (200 + 60 * digit + 5 * s) * t)
                tone += 0.01 * rng.standard_normal(n)
                sf.write(rec / f"{digit}_{speaker}_{take}.wav", tone, 8000, subtype="PCM_16")
    esc = root / "esc10"
    (esc / "audio").mkdir(parents=True)
    (esc / "meta").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for target in (0, 1, 10, 11, 12):
        name = f"1-{target}-A-{target}.wav"
        sf.write(esc / "audio" / name, rng.standard_normal(22050) * 0.1, 44100, subtype="PCM_16")
        lines.append(f"{name},1,{target},c{target},True,{target},A")
    (esc / "meta" / "esc10.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _fixture(tmp_path_factory.mktemp("data"))


# --- preprocessing ------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.9])
def test_pca_energy_removal_keeps_the_stated_energy_fraction(fraction: float) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 20)) @ rng.normal(size=(20, 20)) + 3.0
    rec, k, kept = pca_energy_removal(x, "energy", fraction)
    # Independent reference: numpy SVD of the centred data.
    centred = x - x.mean(0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    ratio = np.cumsum(s**2) / np.sum(s**2)
    expected_k = max(int(np.argmax(ratio > fraction)), 1)
    assert k == expected_k
    assert kept == pytest.approx(ratio[k - 1], rel=1e-9)
    assert kept <= fraction < ratio[k]
    np.testing.assert_allclose(rec, centred @ vt[:k].T @ vt[:k], atol=1e-4)
    # The energy of the reconstruction is the kept fraction of the total.
    assert np.sum(rec.astype(np.float64) ** 2) / np.sum(centred**2) == pytest.approx(kept, rel=1e-4)


def test_pca_components_rule_keeps_a_quarter_of_the_components() -> None:
    x = np.random.default_rng(2).normal(size=(300, 16))
    _, k, _ = pca_energy_removal(x, "components", 0.25)
    assert k == 4


@pytest.mark.parametrize("length", [1500, 2345, 8000, 13001])
def test_mfas_segments_are_the_smallest_that_make_112_frames(length: int) -> None:
    i, j = mfas_segments(length)
    # Brute force of the source's search, in plain Python.
    expected = None
    for ii in range(-(-length // 112) - 1, length):
        hits = [jj for jj in range(ii) if 113 * ii - 112 * jj > length >= 112 * ii - 111 * jj]
        if hits:
            expected = (ii, hits[0])
            break
    assert (i, j) == expected
    signal = np.random.default_rng(0).normal(size=length)
    f, t, _ = spectrogram(signal, fs=8000, window="boxcar", nperseg=i, noverlap=j, nfft=223)
    assert (len(f), len(t)) == (112, 112)
    assert mfas_spectrogram(signal, 8000).shape == (112, 112)


# --- splits ---------------------------------------------------------------------------------


def test_multibench_split_sizes_and_speaker_rule(data: Path) -> None:
    splits = make_avmnist(data_dir=str(data), use_cache=False)
    # 240 train rows: the last 240 * 5000 / 60000 = 20 are validation (MultiBench's rule).
    assert splits.info.sizes == {"train": 220, "val": 20, "test": 60}
    assert splits.info.extra["image_index"]["val"].tolist() == list(range(220, 240))
    speakers = splits.info.extra["speakers"]
    assert speakers["test"] == ["yweweler"] and speakers["val"] == ["george"]
    assert set(speakers["train"]) == set(FSDD_SPEAKERS) - {"yweweler", "george"}
    names = splits.info.extra["recordings"]
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        rows = splits.info.extra["recording"][name].tolist()
        digits = [int(names[r].split("_")[0]) for r in rows]
        assert digits == split.label.tolist()
        assert {names[r].split("_")[1] for r in rows} <= set(speakers[name])
    assert splits.train.inputs["audio"].shape[1:] == (1, 112, 112)
    # Test noise clips are disjoint from the training ones.
    pool = splits.info.extra["noise_pool"]
    assert pool["train"] and pool["test"] and not set(pool["train"]) & set(pool["test"])


def test_take_split_keeps_speakers_in_every_split_and_takes_apart(data: Path) -> None:
    splits = make_avmnist(
        data_dir=str(data), use_cache=False, audio_split="take", test_takes=[0], val_takes=[1]
    )
    takes = splits.info.extra["takes"]
    assert takes == {"train": [2, 3], "val": [1], "test": [0]}
    assert set(splits.info.extra["speakers"]["test"]) == set(FSDD_SPEAKERS)
    assert set(splits.info.extra["speakers"]["train"]) == set(FSDD_SPEAKERS)


def test_clean_protocol_is_today_s_variant(data: Path) -> None:
    splits = make_avmnist(data_dir=str(data), use_cache=False, protocol="clean")
    assert splits.info.extra["speakers"]["test"] == ["theo"]
    assert splits.info.extra["speakers"]["val"] == ["nicolas"]
    assert splits.train.inputs["audio"].shape[1:] == (1, 40, 101)
    assert splits.info.extra["noise_clips"] == []
    # Raw pixels in [0, 1] (no PCA).
    raw = np.frombuffer(
        gzip.decompress((data / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()),
        np.uint8,
        offset=16,
    ).reshape(-1, 28, 28)
    np.testing.assert_allclose(splits.test.inputs["image"][:, 0].numpy(), raw / 255.0, atol=1e-7)


def test_bad_protocol_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"data.protocol='published' is unknown"):
        make_avmnist(protocol="published")
    with pytest.raises(ValueError, match=r"keep_waveforms=true needs log-mel"):
        make_avmnist(keep_waveforms=True)


# --- cache ------------------------------------------------------------------------------------


def test_cache_stores_unique_spectrograms_and_equals_the_rebuild(
    data: Path, tmp_path: Path
) -> None:
    first = make_avmnist(data_dir=str(data), cache_dir=str(tmp_path))
    hit = make_avmnist(data_dir=str(data), cache_dir=str(tmp_path))
    rebuilt = make_avmnist(data_dir=str(data), use_cache=False)
    assert not first.info.extra["from_cache"] and hit.info.extra["from_cache"]
    assert isinstance(hit.train, IndexedMultimodalDataset)
    pool = hit.train.pools["audio"]
    assert pool.dtype == torch.float16
    # One spectrogram per (recording, noise clip) used, never one per sample.
    keys = set()
    for s in ("train", "val", "test"):
        keys |= set(
            zip(
                hit.info.extra["recording"][s].tolist(),
                hit.info.extra["noise_clip"][s].tolist(),
                strict=True,
            )
        )
    assert pool.shape[0] == hit.info.extra["unique_audio"] == len(keys)
    total = sum(hit.info.sizes.values())
    assert pool.shape[0] < total
    for a, b in ((hit.train, rebuilt.train), (hit.test, rebuilt.test), (hit.val, first.val)):
        assert torch.equal(a.inputs["audio"], b.inputs["audio"])
        assert torch.equal(a.inputs["image"], b.inputs["image"])
    # Cache: about the pools' bytes, not one copy per sample.
    pool_bytes = sum(t.numel() * t.element_size() for t in hit.train.pools.values())
    pool_bytes += hit.test.pools["image"].numel() * 2
    assert hit.info.extra["cache_bytes"] < 1.2 * pool_bytes + 200_000


def test_indexed_batches_subsets_and_replace_match_the_materialised_tensors(data: Path) -> None:
    splits = make_avmnist(data_dir=str(data), use_cache=False, max_images=60)
    ds = splits.train
    rows = [5, 0, 3]
    batch = ds.__getitems__(rows)
    for m in ("image", "audio"):
        assert torch.equal(batch.inputs[m], ds.inputs[m][rows])
    sub = ds.subset(rows)
    assert torch.equal(sub.inputs["audio"], ds.inputs["audio"][rows])
    plain = ds.replace(inputs={**ds.inputs, "audio": torch.zeros_like(ds.inputs["audio"])})
    assert torch.equal(plain.inputs["image"], ds.inputs["image"])
    assert float(plain.inputs["audio"].abs().sum()) == 0.0


# --- FSDD reader robustness --------------------------------------------------------------------


def _copy(data: Path, root: Path) -> Path:
    import shutil

    shutil.copytree(data, root, dirs_exist_ok=True)
    return root / "fsdd" / "recordings"


def test_hidden_resource_fork_files_are_ignored(data: Path, tmp_path: Path) -> None:
    rec = _copy(data, tmp_path)
    (rec / "._0_george_0.wav").write_bytes(b"\x00\x05\x16\x07 resource fork")
    splits = make_avmnist(data_dir=str(tmp_path), use_cache=False, max_images=60)
    assert "._0_george_0.wav" not in splits.info.extra["recordings"]
    assert splits.info.skipped["count"] == 0


def test_float32_wav_is_read(tmp_path: Path) -> None:
    signal = np.sin(np.linspace(0, 20, 1600)).astype(np.float32) * 0.5
    sf.write(tmp_path / "f.wav", signal, 8000, subtype="FLOAT")
    np.testing.assert_array_equal(read_wav(tmp_path / "f.wav"), signal)
    data = (tmp_path / "f.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) - 400])
    with pytest.raises(CorruptDataError, match=r"t.wav: truncated"):
        read_wav(tmp_path / "t.wav")


def test_zero_frame_wav_is_a_data_error_or_skipped(data: Path, tmp_path: Path) -> None:
    rec = _copy(data, tmp_path)
    sf.write(rec / "3_theo_1.wav", np.zeros(0, dtype=np.float32), 8000, subtype="PCM_16")
    with pytest.raises(CorruptDataError, match=r"3_theo_1.wav: holds zero audio frames"):
        make_avmnist(data_dir=str(tmp_path), use_cache=False, max_images=60)
    with pytest.warns(UserWarning, match=r"skipped 1 bad file"):
        splits = make_avmnist(
            data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), max_images=60, on_error="skip"
        )
    assert splits.info.skipped["count"] == 1
    assert "3_theo_1.wav" not in splits.info.extra["recordings"]
    # The skipped files are part of the cache: a cache hit still reports them.
    hit = make_avmnist(
        data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), max_images=60, on_error="skip"
    )
    assert hit.info.extra["from_cache"]
    assert hit.info.skipped["files"] == [str(rec / "3_theo_1.wav")]


def test_duplicated_recording_is_not_counted_twice(data: Path, tmp_path: Path) -> None:
    rec = _copy(data, tmp_path)
    (rec / "5_lucas_3.wav").write_bytes((rec / "5_lucas_2.wav").read_bytes())
    with pytest.raises(CorruptDataError, match=r"5_lucas_3.wav: the same content as 5_lucas_2"):
        make_avmnist(data_dir=str(tmp_path), use_cache=False, max_images=60)
    with pytest.warns(UserWarning, match=r"skipped 1 bad file"):
        splits = make_avmnist(
            data_dir=str(tmp_path), use_cache=False, max_images=60, on_error="skip"
        )
    names = splits.info.extra["recordings"]
    assert "5_lucas_2.wav" in names and "5_lucas_3.wav" not in names
    assert len(names) == len(set(names)) == 10 * 6 * 4 - 1


def test_a_protocol_default_is_part_of_a_runs_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults filled at build time count in the config hash: changing one changes run ids."""
    from omegaconf import OmegaConf

    from modalab.data import avmnist
    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import config_hash, run_id

    def plain(*overrides: str) -> dict:
        return OmegaConf.to_container(compose_config(["data=avmnist", *overrides]), resolve=True)

    default, explicit = plain(), plain("data.val_speakers=[george]")
    assert config_hash(default) == config_hash(explicit)  # the default, written out
    assert config_hash(default) != config_hash(plain("data.val_speakers=[]"))
    before = run_id(default)
    monkeypatch.setitem(avmnist.PROTOCOLS["multibench"], "val_speakers", ["lucas"])
    assert run_id(default) != before
    assert run_id(plain("data.val_speakers=[george]")) == before  # explicit values unchanged
