"""``avmnist``: MNIST digits paired by label with spoken digits of the Free Spoken Digit Dataset.

AV-MNIST (Vielzeuf et al., "CentralNet: a Multilayer Approach for Multimodal Fusion", ECCV
Workshops 2018) is the audio-visual digit benchmark used by MultiBench (Liang et al., NeurIPS
Datasets and Benchmarks 2021) and by SMIL (Ma et al., "SMIL: Multimodal Learning with Severely
Missing Modality", AAAI 2021). This builder makes it from the original files:

* MNIST (LeCun, Cortes & Burges) idx files, gzipped or not: ``mnist/{train,t10k}-images-
  idx3-ubyte[.gz]`` and ``...-labels-idx1-ubyte[.gz]``; whichever splits are present are used.
* The Free Spoken Digit Dataset (Jackson et al., 2018) 8 kHz mono wav recordings
  ``fsdd/recordings/{digit}_{speaker}_{take}.wav``.

Audio becomes a log-mel spectrogram (``torch.stft`` and the mel filter bank of
``transformers.audio_utils``), shaped ``[1, n_mels, frames]``. Each image is paired with a
recording of the same digit drawn deterministically from ``seed``; recordings are split by
**speaker** (test and validation speakers never appear in training), and within a split every
recording of a digit is used about equally often. Unlike MultiBench's copy, images are not
PCA-degraded and audio is not mixed with ESC-50 noise (noise is a scenario, applied later).

The built tensors are cached (keyed by the configuration and the SHA-256 of every input file,
written atomically), so a second build reads one file.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import re
import time
import warnings
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataFile,
    DataSource,
    MissingDataError,
    RemoteFile,
    SkippedFiles,
    atomic_save_bytes,
    check_on_error,
    require_files,
    resolve_data_dir,
)
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import MultimodalTensorDataset, Splits

__all__ = [
    "FSDD_SPEAKERS",
    "AVMNISTConfig",
    "log_mel_spectrogram",
    "make_avmnist",
    "pair_by_label",
    "read_fsdd",
    "read_idx",
    "read_wav",
    "waveform_features",
]

IDX_MAGIC = {"images": 2051, "labels": 2049}
FSDD_SAMPLE_RATE = 8000
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
_FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# MD5 of the original .gz files (as published with torchvision's MNIST) and of the decompressed
# test files (computed from the original files).
_MNIST_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
_MNIST_CONTENT_MD5 = {
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
_FSDD_COMMIT = "26eb9aaf76e81b692f806f9140c2d2777410d7a1"
#: :func:`~modalab.data.files.folder_digest` of the 3,000 recordings at that commit.
_FSDD_DIGEST = "99aa5e3a7c822ab55b2a3b47e0b05aeb9f011c54837a12e3831ad24108330829"


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read an MNIST idx file (``.gz`` or raw) after checking its magic number and size.

    Args:
        path: The file.
        kind: ``"images"`` (magic 2051, ``[N, rows, cols]`` uint8) or ``"labels"`` (2049, ``[N]``).

    Returns:
        The array.

    Raises:
        CorruptDataError: Wrong magic number, truncated data or an unreadable gzip stream.
    """
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as error:
        raise CorruptDataError(f"{path}: not a readable gzip file ({error}).") from None
    if len(raw) < 8:
        raise CorruptDataError(f"{path}: {len(raw)} bytes, too short for an idx header.")
    magic = int.from_bytes(raw[:4], "big")
    if magic != IDX_MAGIC[kind]:
        raise CorruptDataError(
            f"{path}: idx magic number {magic}, expected {IDX_MAGIC[kind]} for an MNIST {kind} "
            "file; the file is corrupt or not an MNIST idx file."
        )
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise CorruptDataError(
            f"{path}: header declares {dims} = {expected} bytes of data but the file holds "
            f"{len(raw) - offset}; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _check_mnist(path: Path) -> None:
    read_idx(path, "images" if "images" in path.name else "labels")


def read_wav(path: Path, sample_rate: int = FSDD_SAMPLE_RATE) -> np.ndarray:
    """Read a mono PCM wav file as float32 in [-1, 1], checking its rate and completeness.

    Raises:
        CorruptDataError: Unreadable, truncated (fewer frames than its header declares),
            not mono, or not at ``sample_rate``.
    """
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        with wave.open(str(path)) as header:
            declared = header.getnframes()
    except (RuntimeError, sf.LibsndfileError, wave.Error, EOFError) as error:
        raise CorruptDataError(f"{path}: not a readable wav file ({error}).") from None
    if data.shape[0] < declared:
        raise CorruptDataError(
            f"{path}: truncated; its header declares {declared} frames but only "
            f"{data.shape[0]} are in the file."
        )
    if rate != sample_rate or data.shape[1] != 1:
        raise CorruptDataError(
            f"{path}: {data.shape[1]} channel(s) at {rate} Hz; FSDD recordings are mono at "
            f"{sample_rate} Hz."
        )
    return data[:, 0]


@dataclass
class FSDDRecordings:
    """The recordings of the Free Spoken Digit Dataset that are on disk.

    Attributes:
        paths: One path per recording, sorted by name.
        digit: ``[R]`` spoken digit.
        speaker: Speaker name per recording.
        take: ``[R]`` take index (the dataset's official test split is takes 0-4).
    """

    paths: list[Path]
    digit: np.ndarray
    speaker: list[str]
    take: np.ndarray


def read_fsdd(folder: Path) -> FSDDRecordings:
    """List the FSDD recordings in ``folder`` (named ``{digit}_{speaker}_{take}.wav``).

    Raises:
        MissingDataError: If the folder holds no recording.
        CorruptDataError: If a ``.wav`` file does not follow the naming scheme.
    """
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise MissingDataError(
            f"No FSDD recordings (*.wav) found in {folder}. "
            + SOURCES.get("fsdd").how_to_get(folder.parent.parent)
        )
    digit, speaker, take = [], [], []
    for path in files:
        match = _FSDD_NAME.match(path.name)
        if match is None:
            raise CorruptDataError(
                f"{path}: not an FSDD recording name ({{digit}}_{{speaker}}_{{take}}.wav)."
            )
        digit.append(int(match.group(1)))
        speaker.append(match.group(2))
        take.append(int(match.group(3)))
    return FSDDRecordings(files, np.array(digit), speaker, np.array(take))


def log_mel_spectrogram(
    waveforms: Tensor,
    sample_rate: int,
    n_fft: int = 256,
    hop_length: int = 80,
    win_length: int = 200,
    n_mels: int = 40,
) -> Tensor:
    """Log-mel spectrograms of a batch of waveforms.

    A Hann-windowed STFT (``torch.stft``), power spectrum, Slaney mel filter bank
    (``transformers.audio_utils.mel_filter_bank``) from 0 Hz to Nyquist, then ``log(x + 1e-6)``.

    Args:
        waveforms: ``[B, T]``.
        sample_rate: Sampling rate in Hz.
        n_fft: FFT size.
        hop_length: Hop between frames (samples).
        win_length: Window length (samples).
        n_mels: Number of mel bands.

    Returns:
        ``[B, n_mels, frames]`` with ``frames = T // hop_length + 1``.

    Example:
        >>> log_mel_spectrogram(torch.zeros(2, 800), 8000).shape
        torch.Size([2, 40, 11])
    """
    from transformers.audio_utils import mel_filter_bank

    window = torch.hann_window(win_length, dtype=waveforms.dtype)
    spec = torch.stft(
        waveforms,
        n_fft,
        hop_length,
        win_length,
        window=window,
        center=True,
        return_complex=True,
    )
    power = spec.abs().pow(2)  # [B, n_fft // 2 + 1, frames]
    filters = mel_filter_bank(
        num_frequency_bins=n_fft // 2 + 1,
        num_mel_filters=n_mels,
        min_frequency=0.0,
        max_frequency=sample_rate / 2,
        sampling_rate=sample_rate,
        norm="slaney",
        mel_scale="slaney",
    )  # [freq, n_mels]
    mel = torch.einsum("bft,fm->bmt", power, torch.as_tensor(filters, dtype=power.dtype))
    return torch.log(mel + 1e-6)


def waveform_features(waveforms: Tensor, recipe: Mapping[str, Any]) -> Tensor:
    """The features a dataset computes from waveforms, from its ``info["audio_features"]`` recipe.

    Used by scenarios that corrupt the waveform of a spectrogram modality (e.g. background
    noise) to recompute exactly the dataset's features.

    Args:
        waveforms: ``[N, T]``.
        recipe: ``kind`` (``log_mel``: :func:`log_mel_spectrogram`, then ``(x - mean) / std``)
            and its parameters (``sample_rate``, ``n_fft``, ``hop_length``, ``win_length``,
            ``n_mels``, ``mean``, ``std``).

    Returns:
        ``[N, 1, n_mels, frames]``.

    Raises:
        ValueError: For an unknown ``kind``.

    Example:
        >>> recipe = {"kind": "log_mel", "sample_rate": 8000, "n_fft": 256, "hop_length": 80,
        ...           "win_length": 200, "n_mels": 40, "mean": 0.0, "std": 1.0}
        >>> waveform_features(torch.zeros(2, 800), recipe).shape
        torch.Size([2, 1, 40, 11])
    """
    if recipe.get("kind") != "log_mel":
        raise ValueError(
            f"Unknown audio feature kind {recipe.get('kind')!r}; modalab computes 'log_mel'."
        )
    chunks = [
        log_mel_spectrogram(
            waveforms[k : k + 256],
            int(recipe["sample_rate"]),
            int(recipe["n_fft"]),
            int(recipe["hop_length"]),
            int(recipe["win_length"]),
            int(recipe["n_mels"]),
        )
        for k in range(0, waveforms.shape[0], 256)
    ]
    mels = torch.cat(chunks) if chunks else waveforms.new_zeros(0, int(recipe["n_mels"]), 0)
    return ((mels - float(recipe["mean"])) / float(recipe["std"])).unsqueeze(1)


def _fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or right-pad with zeros to ``length`` samples."""
    if signal.shape[0] >= length:
        start = (signal.shape[0] - length) // 2
        return signal[start : start + length]
    return np.pad(signal, (0, length - signal.shape[0]))


def pair_by_label(image_label: np.ndarray, audio_label: np.ndarray, seed: int) -> np.ndarray:
    """For each image, the index of a recording with the same label, drawn deterministically.

    Within each label, the recordings are shuffled and cycled through, so every recording is
    used ``floor`` or ``ceil`` of (images / recordings) times.

    Args:
        image_label: ``[N]`` image labels.
        audio_label: ``[R]`` recording labels.
        seed: Seed of the draw.

    Returns:
        ``[N]`` recording indices.

    Raises:
        ValueError: If a label of the images has no recording.

    Example:
        >>> pair_by_label(np.array([0, 1, 0, 1]), np.array([1, 0, 1]), seed=0).tolist()[0]
        1
    """
    rng = np.random.default_rng(seed)
    out = np.empty(image_label.shape[0], dtype=np.int64)
    for value in np.unique(image_label):
        rows = np.flatnonzero(image_label == value)
        pool = np.flatnonzero(audio_label == value)
        if pool.size == 0:
            raise ValueError(f"No recording of label {int(value)} to pair with its images.")
        rows = rng.permutation(rows)
        reps = -(-rows.size // pool.size)
        cycle = np.concatenate([rng.permutation(pool) for _ in range(reps)])
        out[rows] = cycle[: rows.size]
    return out


@dataclass
class AVMNISTConfig:
    """Configuration of ``data=avmnist``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory (empty: ``$MODALAB_DATA``, else ``~/.modalab/data``); it holds
            ``mnist/`` and ``fsdd/recordings/``.
        test_speakers: FSDD speakers whose recordings pair with the test images.
        val_speakers: FSDD speakers whose recordings pair with the validation images.
        val_fraction: Fraction of the training images held out for validation (or, when only
            the MNIST test split is on disk, of all images).
        test_fraction: Used only when the MNIST training split is absent: fraction of the
            MNIST test images used as the test split.
        max_images: Use at most this many images (a seeded, label-stratified subset; 0: all).
        audio_seconds: Recordings are centre-cropped or zero-padded to this duration.
        n_mels: Mel bands of the spectrogram.
        n_fft: FFT size.
        hop_length: STFT hop (samples at 8 kHz; 80 = 10 ms).
        win_length: STFT window (samples; 200 = 25 ms).
        seed: Seed of the split and of the image–recording pairing.
        cache_dir: Folder of the built-tensor cache (empty: ``$MODALAB_CACHE`` or
            ``~/.cache/modalab``).
        use_cache: Read/write the cache.
        keep_waveforms: Also keep the fixed-length waveforms (``info["waveforms"]["audio"]``
            ``[R, T]``, one row per recording; ``extras["audio_recording"]`` gives each sample's
            row) and the recipe of the features (``info["audio_features"]``), so that a
            scenario can corrupt the waveform and recompute the log-mel spectrogram
            (``scenario=[background_noise]``). Costs ``4·T`` bytes per recording.
        on_error: ``raise`` (default): a corrupt recording is an error naming the file;
            ``skip``: drop corrupt recordings, warn with their count and record them in
            ``info["skipped"]``.
    """

    name: str = "avmnist"
    data_dir: str = ""
    test_speakers: list[str] = field(default_factory=lambda: ["theo"])
    val_speakers: list[str] = field(default_factory=lambda: ["nicolas"])
    val_fraction: float = 0.1
    test_fraction: float = 0.3
    max_images: int = 0
    audio_seconds: float = 1.0
    n_mels: int = 40
    n_fft: int = 256
    hop_length: int = 80
    win_length: int = 200
    seed: int = 0
    cache_dir: str = ""
    use_cache: bool = True
    keep_waveforms: bool = False
    on_error: str = "raise"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        check_on_error(self.on_error)
        for key in ("test_speakers", "val_speakers"):
            unknown = [s for s in getattr(self, key) if s not in FSDD_SPEAKERS]
            if unknown:
                raise ValueError(
                    f"data.{key} has unknown speakers {unknown}; FSDD has {list(FSDD_SPEAKERS)}."
                )
        overlap = set(self.test_speakers) & set(self.val_speakers)
        if overlap or not self.test_speakers or not self.val_speakers:
            raise ValueError(
                "data.test_speakers and data.val_speakers must be non-empty and disjoint; "
                f"got {list(self.test_speakers)} and {list(self.val_speakers)}."
            )
        if len(set(self.test_speakers) | set(self.val_speakers)) >= len(FSDD_SPEAKERS):
            raise ValueError("Leave at least one FSDD speaker for training.")
        for key in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, key) < 1:
                raise ValueError(f"data.{key} must be in (0, 1), got {getattr(self, key)}.")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("data.val_fraction + data.test_fraction must be below 1.")
        if self.max_images < 0 or 0 < self.max_images < 30:
            raise ValueError(f"data.max_images must be 0 (all) or >= 30, got {self.max_images}.")
        if self.audio_seconds <= 0 or self.n_mels < 8 or self.win_length > self.n_fft:
            raise ValueError(
                "Need data.audio_seconds > 0, data.n_mels >= 8 and data.win_length <= n_fft."
            )


def _mnist_file(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def _load_mnist(data_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, Path, Path]]:
    source = SOURCES.get("mnist")
    root = data_dir / source.folder
    found = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _mnist_file(root, f"{prefix}-images-idx3-ubyte")
        labels = _mnist_file(root, f"{prefix}-labels-idx1-ubyte")
        if images is None and labels is None:
            continue
        if images is None or labels is None:
            missing = f"{prefix}-{'images-idx3' if images is None else 'labels-idx1'}-ubyte.gz"
            require_files(source, data_dir, [missing])
        assert images is not None and labels is not None
        x, y = read_idx(images, "images"), read_idx(labels, "labels")
        if x.shape[0] != y.shape[0]:
            raise CorruptDataError(
                f"{images} has {x.shape[0]} images but {labels} has {y.shape[0]} labels."
            )
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise CorruptDataError(
                f"{images}: images of shape {tuple(x.shape[1:])}, expected MNIST's (28, 28)."
            )
        if y.size and int(y.max()) > 9:
            bad = int(np.flatnonzero(y > 9)[0])
            raise CorruptDataError(
                f"{labels}: label {int(y[bad])} at row {bad} is out of range; MNIST labels are 0-9."
            )
        found[split] = (x, y, images, labels)
    if not found:
        require_files(source, data_dir, ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    return found


def _cache_root(cache_dir: str) -> Path:
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("MODALAB_CACHE", "~/.cache/modalab")).expanduser()


def _fingerprint(paths: Sequence[Path], config: AVMNISTConfig) -> str:
    digest = hashlib.sha256()
    fields = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in ("data_dir", "cache_dir", "use_cache", "name")
    }
    digest.update(json.dumps(fields, sort_keys=True).encode())
    for path in paths:
        digest.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:24]


def _stratified_subset(label: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` rows with the label proportions of ``label`` (largest-remainder rounding)."""
    values, counts = np.unique(label, return_counts=True)
    quota = counts * size / label.shape[0]
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take))[: size - take.sum()]] += 1
    rows = [rng.choice(np.flatnonzero(label == v), k, replace=False) for v, k in zip(values, take)]
    return np.sort(np.concatenate(rows))


def _build(config: AVMNISTConfig, data_dir: Path) -> dict[str, Any]:
    mnist = _load_mnist(data_dir)
    recordings = read_fsdd(data_dir / SOURCES.get("fsdd").folder / "recordings")
    rng = np.random.default_rng(config.seed)

    # Image splits: the official MNIST test split when the training split is also present.
    pools: dict[str, tuple[np.ndarray, np.ndarray, str, np.ndarray]] = {}
    if "train" in mnist:
        x, y = mnist["train"][0], mnist["train"][1]
        order = rng.permutation(x.shape[0])
        n_val = round(x.shape[0] * config.val_fraction)
        pools["val"] = (x, y, "train", np.sort(order[:n_val]))
        pools["train"] = (x, y, "train", np.sort(order[n_val:]))
        if "test" in mnist:
            xt, yt = mnist["test"][0], mnist["test"][1]
            pools["test"] = (xt, yt, "t10k", np.arange(xt.shape[0]))
        else:
            n_test = round(x.shape[0] * config.test_fraction)
            pools["test"] = (x, y, "train", np.sort(order[n_val : n_val + n_test]))
            pools["train"] = (x, y, "train", np.sort(order[n_val + n_test :]))
        image_protocol = "MNIST train split → train/val, MNIST test split → test"
    else:
        x, y = mnist["test"][0], mnist["test"][1]
        order = rng.permutation(x.shape[0])
        n_test = round(x.shape[0] * config.test_fraction)
        n_val = round(x.shape[0] * config.val_fraction)
        pools["test"] = (x, y, "t10k", np.sort(order[:n_test]))
        pools["val"] = (x, y, "t10k", np.sort(order[n_test : n_test + n_val]))
        pools["train"] = (x, y, "t10k", np.sort(order[n_test + n_val :]))
        image_protocol = (
            "only the MNIST test split is on disk: its images are split "
            f"{1 - config.val_fraction - config.test_fraction:.2f}/{config.val_fraction:.2f}/"
            f"{config.test_fraction:.2f} into train/val/test"
        )
    if config.max_images:
        total = sum(p[3].shape[0] for p in pools.values())
        for split, (xs, ys, origin, rows) in list(pools.items()):
            size = max(10, round(rows.shape[0] * config.max_images / total))
            pools[split] = (xs, ys, origin, rows[_stratified_subset(ys[rows], size, rng)])

    # Audio: read, fix length, log-mel.
    length = round(config.audio_seconds * FSDD_SAMPLE_RATE)
    skipped = SkippedFiles("avmnist")
    kept: list[int] = []
    wave_list: list[np.ndarray] = []
    for i, path in enumerate(recordings.paths):
        try:
            wave_list.append(_fix_length(read_wav(path), length))
        except CorruptDataError as error:
            if config.on_error == "raise":
                raise CorruptDataError(
                    f"{error} Replace the file, or set data.on_error=skip to drop corrupt "
                    "recordings (counted)."
                ) from None
            skipped.add(path, error)
        else:
            kept.append(i)
    if skipped.count:
        if not kept:
            raise CorruptDataError(f"Every FSDD recording is corrupt, e.g. {skipped.errors[:3]}.")
        skipped.report()
        recordings = FSDDRecordings(
            [recordings.paths[i] for i in kept],
            recordings.digit[kept],
            [recordings.speaker[i] for i in kept],
            recordings.take[kept],
        )
    waves = np.stack(wave_list)
    # In chunks, to bound the memory of the complex STFT.
    mels = torch.cat(
        [
            log_mel_spectrogram(
                torch.from_numpy(waves[k : k + 256]),
                FSDD_SAMPLE_RATE,
                config.n_fft,
                config.hop_length,
                config.win_length,
                config.n_mels,
            )
            for k in range(0, waves.shape[0], 256)
        ]
    )
    speaker = np.array(recordings.speaker)
    speaker_split = np.where(
        np.isin(speaker, config.test_speakers),
        "test",
        np.where(np.isin(speaker, config.val_speakers), "val", "train"),
    )
    train_mels = mels[torch.from_numpy(speaker_split == "train")]
    mean, std = float(train_mels.mean()), float(train_mels.std())
    mels = ((mels - mean) / std).unsqueeze(1)

    out: dict[str, Any] = {"splits": {}, "recordings": [p.name for p in recordings.paths]}
    for split in ("train", "val", "test"):
        xs, ys, origin, rows = pools[split]
        audio_rows = np.flatnonzero(speaker_split == split)
        pairing = audio_rows[
            pair_by_label(
                ys[rows], recordings.digit[audio_rows], config.seed + _split_offset(split)
            )
        ]
        out["splits"][split] = {
            "image": torch.from_numpy(xs[rows].astype(np.float32) / 255.0).unsqueeze(1),
            "audio": mels[torch.from_numpy(pairing)].clone(),
            "label": torch.from_numpy(ys[rows].astype(np.int64)),
            "image_index": torch.from_numpy(rows.astype(np.int64)),
            "recording": torch.from_numpy(pairing.astype(np.int64)),
            "image_origin": origin,
        }
    out["speakers"] = {
        s: sorted(set(speaker[speaker_split == s].tolist())) for s in ("train", "val", "test")
    }
    out["image_protocol"] = image_protocol
    out["mnist_files"] = sorted(
        {str(v[2]) for v in mnist.values()} | {str(v[3]) for v in mnist.values()}
    )
    out["audio_norm"] = (mean, std)
    if config.keep_waveforms:
        out["waveforms"] = torch.from_numpy(waves.astype(np.float32))
    out["skipped"] = skipped.as_info()
    return out


def _split_offset(split: str) -> int:
    """A fixed integer offset per split name (so each split's pairing draw differs)."""
    return {"train": 0, "val": 1, "test": 2}[split]


def _input_files(data_dir: Path) -> list[Path]:
    mnist_root = data_dir / SOURCES.get("mnist").folder
    files = (
        sorted(p for p in mnist_root.glob("*-ubyte*") if p.is_file()) if mnist_root.is_dir() else []
    )
    fsdd = data_dir / SOURCES.get("fsdd").folder / "recordings"
    return files + (sorted(fsdd.glob("*.wav")) if fsdd.is_dir() else [])


@DATASETS.register("avmnist")
def make_avmnist(**kwargs: Any) -> Splits:
    """AV-MNIST from the original files: MNIST images + FSDD spoken digits, speaker-disjoint.

    Args:
        **kwargs: Fields of :class:`AVMNISTConfig` (``name`` excluded).

    Returns:
        Splits with modalities ``image`` ``[N, 1, 28, 28]`` in [0, 1] and ``audio``
        ``[N, 1, n_mels, frames]`` (log-mel, standardised with the training recordings'
        statistics); ``info`` has the split sizes, speakers per split, the recording paired
        with each sample (``info["recording"][split]`` indexes ``info["recordings"]``), the
        image protocol, the files read, the cache path and build time.

    Raises:
        MissingDataError: MNIST idx files or FSDD recordings absent (names them all).
        CorruptDataError: A truncated wav, a wrong idx magic number, ...
    """
    config = AVMNISTConfig(**kwargs)
    config.validate()
    data_dir = resolve_data_dir(config.data_dir)
    start = time.perf_counter()
    built: dict[str, Any] | None = None
    cache_path: Path | None = None
    if config.use_cache:
        inputs = _input_files(data_dir)
        if inputs:
            cache_path = (
                _cache_root(config.cache_dir) / f"avmnist-{_fingerprint(inputs, config)}.pt"
            )
            if cache_path.is_file():
                try:
                    built = torch.load(cache_path, weights_only=True)
                except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
                    # The cache is derived data: say so and rebuild it from the original files.
                    warnings.warn(
                        f"Ignoring the unreadable AV-MNIST cache {cache_path} ({error}); "
                        "rebuilding it from the original files.",
                        stacklevel=2,
                    )
    from_cache = built is not None
    if built is None:
        built = _build(config, data_dir)
        if cache_path is not None:
            payload = built
            atomic_save_bytes(cache_path, lambda tmp: torch.save(payload, tmp))
    datasets = {}
    for split, part in built["splits"].items():
        extras = {"audio_recording": part["recording"]} if config.keep_waveforms else None
        datasets[split] = MultimodalTensorDataset(
            {"image": part["image"], "audio": part["audio"]},
            part["label"],
            num_classes=10,
            extras=extras,
        )
    info = {
        "name": "avmnist",
        "sizes": {s: len(d) for s, d in datasets.items()},
        "speakers": built["speakers"],
        "recordings": built["recordings"],
        "recording": {s: p["recording"] for s, p in built["splits"].items()},
        "image_index": {s: p["image_index"] for s, p in built["splits"].items()},
        "image_origin": {s: p["image_origin"] for s, p in built["splits"].items()},
        "image_protocol": built["image_protocol"],
        "mnist_files": built["mnist_files"],
        "audio_norm": built["audio_norm"],
        "skipped": built.get("skipped", {"count": 0, "files": [], "errors": []}),
        "data_dir": str(data_dir),
        "cache_path": str(cache_path) if cache_path else "",
        "from_cache": from_cache,
        "build_seconds": time.perf_counter() - start,
        "class_names": [str(d) for d in range(10)],
    }
    if config.keep_waveforms:
        info["waveforms"] = {"audio": built["waveforms"]}
        info["audio_features"] = {
            "audio": {
                "kind": "log_mel",
                "sample_rate": FSDD_SAMPLE_RATE,
                "n_fft": config.n_fft,
                "hop_length": config.hop_length,
                "win_length": config.win_length,
                "n_mels": config.n_mels,
                "mean": built["audio_norm"][0],
                "std": built["audio_norm"][1],
            }
        }
    return Splits(datasets["train"], datasets["val"], datasets["test"], 10, info)


def _mnist_source() -> DataSource:
    names = (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    )
    return DataSource(
        name="mnist",
        folder="mnist",
        description="MNIST handwritten digits, idx files",
        files=tuple(
            DataFile(n, required=n.startswith("t10k"), content_md5=_MNIST_CONTENT_MD5.get(n))
            for n in names
        ),
        remotes=tuple(
            RemoteFile(tuple(u + n for u in _MNIST_URLS), n, _MNIST_GZ_MD5[n]) for n in names
        ),
        citation="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, Proc. IEEE 1998",
        licence="CC BY-SA 3.0",
        check=_check_mnist,
    )


def _check_wav(path: Path) -> None:
    read_wav(path)


def _fsdd_source() -> DataSource:
    files = tuple(
        DataFile(f"recordings/{d}_{s}_{t}.wav")
        for d in range(10)
        for s in FSDD_SPEAKERS
        for t in range(50)
    )
    archive = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/{_FSDD_COMMIT}.zip"
    return DataSource(
        name="fsdd",
        folder="fsdd",
        description="Free Spoken Digit Dataset, 3,000 wav recordings at 8 kHz",
        files=files,
        remotes=(
            RemoteFile(
                (archive,),
                "fsdd.zip",
                None,
                extract=f"zip:free-spoken-digit-dataset-{_FSDD_COMMIT}/recordings->recordings",
            ),
        ),
        citation="Z. Jackson et al., Free Spoken Digit Dataset v1.0.10, Zenodo 2018",
        licence="CC BY-SA 4.0",
        content_sha256=("recordings", _FSDD_DIGEST),
        check=_check_wav,
    )


SOURCES.register("mnist", "MNIST handwritten digits (idx files)")(_mnist_source())
SOURCES.register("fsdd", "Free Spoken Digit Dataset (8 kHz wav)")(_fsdd_source())
