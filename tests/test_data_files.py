import gzip
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from _real_data import shared_data_dir
from modalab.data.avmnist import make_avmnist, read_idx, read_wav
from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataFile,
    DataSource,
    MissingDataError,
    RemoteFile,
    download_source,
    file_md5,
    resolve_data_dir,
    verify_source,
)


def test_data_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("MODALAB_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    assert resolve_data_dir("") == tmp_path / "env"
    monkeypatch.delenv("MODALAB_DATA")
    assert resolve_data_dir("") == Path("~/.modalab/data").expanduser()


def test_missing_avmnist_files_error_names_files_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("MODALAB_DATA", str(tmp_path))
    with pytest.raises(MissingDataError) as info:
        make_avmnist(use_cache=False)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz") in message
    assert str(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz") in message
    assert "$MODALAB_DATA" in message and "--data-dir" in message
    assert "modalab data download mnist" in message


def _idx_bytes(magic: int, dims: list[int], payload: bytes) -> bytes:
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def test_read_idx_checks_magic_and_length(tmp_path):
    good = tmp_path / "x-images-idx3-ubyte.gz"
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8)
    good.write_bytes(gzip.compress(_idx_bytes(2051, [2, 3, 4], pixels.tobytes())))
    np.testing.assert_array_equal(read_idx(good, "images"), pixels.reshape(2, 3, 4))
    wrong = tmp_path / "wrong-images-idx3-ubyte"
    wrong.write_bytes(_idx_bytes(2049, [2, 3, 4], pixels.tobytes()))
    with pytest.raises(CorruptDataError, match=r"magic number 2049, expected 2051"):
        read_idx(wrong, "images")
    short = tmp_path / "short-labels-idx1-ubyte"
    short.write_bytes(_idx_bytes(2049, [10], bytes(7)))
    with pytest.raises(CorruptDataError, match=r"truncated"):
        read_idx(short, "labels")
    notgz = tmp_path / "bad-labels-idx1-ubyte.gz"
    notgz.write_bytes(b"not gzip at all")
    with pytest.raises(CorruptDataError, match=r"gzip"):
        read_idx(notgz, "labels")


def test_read_wav_detects_truncation_and_rate(tmp_path):
    signal = (np.sin(np.arange(800) / 5) * 0.5).astype(np.float32)
    path = tmp_path / "0_theo_0.wav"
    sf.write(path, signal, 8000, subtype="PCM_16")
    np.testing.assert_allclose(read_wav(path), signal, atol=1 / 32768 + 1e-6)
    truncated = tmp_path / "1_theo_0.wav"
    truncated.write_bytes(path.read_bytes()[: 44 + 600])
    with pytest.raises(CorruptDataError, match=r"truncated; its header declares 800 frames"):
        read_wav(truncated)
    fast = tmp_path / "2_theo_0.wav"
    sf.write(fast, signal, 16000, subtype="PCM_16")
    with pytest.raises(CorruptDataError, match=r"16000 Hz"):
        read_wav(fast)


def _mirror_avmnist(shared: Path, target: Path) -> None:
    (target / "mnist").mkdir(parents=True)
    for f in (shared / "mnist").iterdir():
        os.symlink(f, target / "mnist" / f.name)
    rec = target / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for f in (shared / "fsdd" / "recordings").iterdir():
        os.symlink(f, rec / f.name)


def test_avmnist_build_fails_on_truncated_wav_and_bad_magic(tmp_path):
    shared = shared_data_dir("mnist", "fsdd/recordings")
    _mirror_avmnist(shared, tmp_path)
    victim = tmp_path / "fsdd" / "recordings" / "7_lucas_3.wav"
    data = victim.read_bytes()
    victim.unlink()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDataError, match=r"7_lucas_3.wav: truncated"):
        make_avmnist(data_dir=str(tmp_path), use_cache=False)
    victim.unlink()
    os.symlink(shared / "fsdd" / "recordings" / "7_lucas_3.wav", victim)
    labels = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.open(labels).read()
    labels.unlink()
    labels.write_bytes(gzip.compress(struct.pack(">I", 2051) + raw[4:]))
    with pytest.raises(CorruptDataError, match=r"t10k-labels-idx1-ubyte.gz: idx magic number 2051"):
        make_avmnist(data_dir=str(tmp_path), use_cache=False)


def test_file_md5_of_gz_is_md5_of_content(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(b"hello world"))
    assert file_md5(path) == hashlib.md5(b"hello world").hexdigest()
    assert file_md5(path, decompress=False) == hashlib.md5(path.read_bytes()).hexdigest()


def test_verify_mnist_on_shared_data(tmp_path):
    shared = shared_data_dir("mnist")
    statuses = {s.path.name: s for s in verify_source(SOURCES.get("mnist"), shared)}
    assert statuses["t10k-images-idx3-ubyte.gz"].status == "ok"
    assert statuses["t10k-labels-idx1-ubyte.gz"].status == "ok"
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(2049, [1], b"\0"))
    )
    statuses = {s.path.name: s for s in verify_source(SOURCES.get("mnist"), tmp_path)}
    assert statuses["t10k-images-idx3-ubyte.gz"].status == "corrupt"
    assert statuses["t10k-labels-idx1-ubyte.gz"].status == "missing"
    assert not statuses["train-images-idx3-ubyte.gz"].required


def test_download_checks_md5(tmp_path):
    served = tmp_path / "served" / "file.bin"
    served.parent.mkdir()
    served.write_bytes(b"payload")
    md5 = hashlib.md5(b"payload").hexdigest()
    source = DataSource(
        name="toy",
        folder="toy",
        description="toy",
        citation="",
        licence="",
        files=(DataFile("file.bin", content_md5=md5),),
        remotes=(RemoteFile((served.as_uri(),), "file.bin", md5),),
    )
    report = download_source(source, tmp_path / "data", log=lambda m: None)
    assert [s.status for s in report] == ["ok"]
    assert (tmp_path / "data" / "toy" / "file.bin").read_bytes() == b"payload"
    bad = DataSource(
        name="bad",
        folder="bad",
        description="bad",
        citation="",
        licence="",
        files=(),
        remotes=(RemoteFile((served.as_uri(),), "file.bin", "0" * 32),),
    )
    with pytest.raises(MissingDataError, match=r"does not match the published"):
        download_source(bad, tmp_path / "data", log=lambda m: None)
    assert not (tmp_path / "data" / "bad" / "file.bin").exists()


def test_audio_utilities_live_in_their_own_module(tmp_path):
    import ast

    import modalab.data.cremad as cremad
    import modalab.scenarios.noise as noise
    from modalab.data import audio, avmnist

    # the generic reader takes any rate; avmnist's keeps FSDD's 8 kHz default
    signal = (np.sin(np.arange(1600) / 7) * 0.5).astype(np.float32)
    path = tmp_path / "clip.wav"
    sf.write(path, signal, 16000, subtype="FLOAT")
    np.testing.assert_array_equal(audio.read_wav(path, 16000), signal)
    with pytest.raises(CorruptDataError, match="expected mono at 8000 Hz"):
        avmnist.read_wav(path)
    # re-exported for compatibility, and the same functions
    assert avmnist.log_mel_spectrogram is audio.log_mel_spectrogram
    assert avmnist.waveform_features is audio.waveform_features
    assert cremad.log_mel_spectrogram is audio.log_mel_spectrogram
    # no scenario or dataset reaches into the AV-MNIST module for audio features
    for module in (noise, cremad):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "modalab.data.avmnist" not in imported and "modalab.data.audio" in imported
