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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from modalab.data import audio
from modalab.data.audio import fix_length, log_mel_spectrogram, waveform_features
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
from modalab.data.indexed import IndexedMultimodalDataset
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, Splits

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
    """Read an FSDD recording: :func:`modalab.data.audio.read_wav`, at 8 kHz by default."""
    return audio.read_wav(path, sample_rate)


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


def _wav_files(folder: Path) -> list[Path]:
    """``*.wav`` files of ``folder``, without hidden ones (``._*`` resource forks of macOS)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.wav") if not p.name.startswith("."))


def read_fsdd(folder: Path) -> FSDDRecordings:
    """List the FSDD recordings in ``folder`` (named ``{digit}_{speaker}_{take}.wav``).

    Hidden files (``._*``, written by macOS beside copied files) are ignored.

    Raises:
        MissingDataError: If the folder holds no recording.
        CorruptDataError: If a ``.wav`` file does not follow the naming scheme.
    """
    files = _wav_files(folder)
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


#: Defaults of each ``data.protocol`` for the fields left unset (``None`` / ``""``).
PROTOCOLS: dict[str, dict[str, Any]] = {
    # MultiBench's AV-MNIST: the files of slyviacassell/_MFAS datasets/avmnist_gen.py (the
    # folder MultiBench's datasets/avmnist/README.md names), split as MultiBench's
    # datasets/avmnist/get_data.py does. See docs/datasets.md for each step and its source.
    "multibench": {
        "image_split": "index",
        "audio_split": "speaker",
        "test_speakers": ["yweweler"],
        # Validation audio from a speaker of neither training nor test (george is not among the
        # source's four speakers): early stopping then measures generalisation to an unseen
        # voice, as the test does. MultiBench's validation (the last 5,000 training samples)
        # shares the training recordings, which a LeNet memorises (docs/datasets.md).
        "val_speakers": ["george"],
        "image_pca": "energy",
        "audio_features": "mfas_psd",
        "noise_power": 0.009,
    },
    # modalab's clean, speaker-disjoint variant (a different task: no degradation).
    "clean": {
        "image_split": "random",
        "audio_split": "speaker",
        "test_speakers": ["theo"],
        "val_speakers": ["nicolas"],
        "image_pca": "none",
        "audio_features": "log_mel",
        "noise_power": 0.0,
    },
}

#: The encoders each ``data.protocol`` names per modality (``info.encoders``), used where
#: ``model.encoders`` names none. ``multibench``: the LeNets of MultiBench's AV-MNIST examples
#: (``examples/multimedia/avmnist_simple_late_fusion.py``: ``LeNet(1, 6, 3)`` image,
#: ``LeNet(1, 6, 5)`` audio; ``lenet`` picks 3 / 5 layers from the 28 / 112 pixel inputs).
PROTOCOL_ENCODERS: dict[str, dict[str, str]] = {
    "multibench": {"image": "lenet", "audio": "lenet"},
    "clean": {},
}


@dataclass
class AVMNISTConfig:
    """Configuration of ``data=avmnist``.

    Fields left at ``None`` / ``""`` take the default of ``protocol`` (:data:`PROTOCOLS`).

    Attributes:
        name: Dataset name.
        data_dir: Data directory (empty: ``$MODALAB_DATA``, else ``~/.modalab/data``); it holds
            ``mnist/``, ``fsdd/recordings/`` and, for audio noise, ``esc10/``.
        protocol: ``multibench`` (default: MultiBench's AV-MNIST, 55,000/5,000/10,000, images
            PCA-degraded, noisy 112x112 spectrograms) or ``clean`` (modalab's clean,
            speaker-disjoint variant: raw pixels, 40-band log-mel, no noise; a different task).
        image_split: ``index`` (MNIST train rows 0-54,999 train, 55,000-59,999 validation, as
            MultiBench's get_data.py) or ``random`` (a seeded ``val_fraction`` of the rows).
        audio_split: ``speaker`` (recordings of ``test_speakers`` / ``val_speakers`` pair with
            the test / validation images) or ``take`` (``test_takes`` / ``val_takes``: every
            speaker in every split, as the FSDD README's official test split, takes 0-4).
        test_speakers: FSDD speakers of the test audio (``audio_split=speaker``).
        val_speakers: FSDD speakers of the validation audio (``multibench``: ``[george]``);
            empty: validation images pair with training recordings (as MultiBench's validation
            set, the last 5,000 training samples, shares the training audio).
        test_takes: Takes of the test audio (``audio_split=take``).
        val_takes: Takes of the validation audio (empty: the training recordings).
        image_pca: ``energy`` (keep the leading principal components whose explained variance
            first exceeds ``pca_fraction``), ``components`` (keep ``pca_fraction`` x 784
            components) or ``none``.
        pca_fraction: The fraction of ``image_pca``.
        audio_features: ``mfas_psd`` (112x112 boxcar power spectral density, log and
            standardised) or ``log_mel`` (``n_mels`` x frames).
        noise_power: Amplitude factor of the ESC-10 noise added to the waveform (0: none).
        noise_variants: Noise clips per recording (each sample draws one): bounds the unique
            spectrograms to ``noise_variants`` x recordings.
        val_fraction: Fraction of the training images held out for validation with
            ``image_split=random`` (or, when only the MNIST test split is on disk, of all).
        test_fraction: Used only when the MNIST training split is absent.
        max_images: Use at most this many images (a seeded, label-stratified subset; 0: all).
        audio_seconds: ``log_mel``: recordings are centre-cropped or zero-padded to this.
        n_mels: Mel bands of ``log_mel``.
        n_fft: FFT size of ``log_mel``.
        hop_length: STFT hop of ``log_mel`` (samples at 8 kHz; 80 = 10 ms).
        win_length: STFT window of ``log_mel`` (samples; 200 = 25 ms).
        seed: Seed of the split and of the image-recording-noise pairing.
        cache_dir: Folder of the built-tensor cache (empty: ``$MODALAB_CACHE`` or
            ``~/.cache/modalab``).
        use_cache: Read/write the cache.
        keep_waveforms: (``protocol=clean``) also keep the fixed-length waveforms
            (``info.waveforms["audio"]`` ``[R, T]``; ``extras["audio_recording"]`` gives each
            sample's row) and the feature recipe (``info.audio_features``) for
            ``scenario=[background_noise]``.
        reference_encoders: Use the protocol's reference encoders unless ``model.encoders``
            names others (``multibench``: MultiBench's LeNet for both modalities, cited in
            :class:`modalab.models.encoders.LeNetEncoder`; ``clean``: none, the default
            encoders). A config key, so runs with and without them have different run ids.
        on_error: ``raise`` (default): a corrupt or duplicated recording is an error naming the
            file; ``skip``: drop them, warn with their count and record them in
            ``info.skipped`` (kept in the cache, so a cache hit reports them too).
    """

    name: str = "avmnist"
    data_dir: str = ""
    protocol: str = "multibench"
    reference_encoders: bool = True
    image_split: str = ""
    audio_split: str = ""
    test_speakers: Optional[list[str]] = None  # noqa: UP045 (OmegaConf structured config)
    val_speakers: Optional[list[str]] = None  # noqa: UP045
    test_takes: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    val_takes: list[int] = field(default_factory=list)
    image_pca: str = ""
    pca_fraction: float = 0.25
    audio_features: str = ""
    noise_power: Optional[float] = None  # noqa: UP045
    noise_variants: int = 3
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

    def resolved(self) -> AVMNISTConfig:
        """A copy with every protocol-dependent field filled in (after :meth:`validate`)."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(
                f"data.protocol={self.protocol!r} is unknown; valid: {sorted(PROTOCOLS)}."
            )
        defaults = PROTOCOLS[self.protocol]
        out = dataclasses.replace(self)
        for key, value in defaults.items():
            if getattr(out, key) in (None, ""):
                setattr(out, key, list(value) if isinstance(value, list) else value)
        return out

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        check_on_error(self.on_error)
        config = self.resolved()
        choices = {
            "image_split": ("index", "random"),
            "audio_split": ("speaker", "take"),
            "image_pca": ("energy", "components", "none"),
            "audio_features": ("mfas_psd", "log_mel"),
        }
        for key, valid in choices.items():
            if getattr(config, key) not in valid:
                raise ValueError(
                    f"data.{key}={getattr(config, key)!r} is unknown; valid: {list(valid)}."
                )
        test_speakers = list(config.test_speakers or [])
        val_speakers = list(config.val_speakers or [])
        for key, speakers in (("test_speakers", test_speakers), ("val_speakers", val_speakers)):
            unknown = [s for s in speakers if s not in FSDD_SPEAKERS]
            if unknown:
                raise ValueError(
                    f"data.{key} has unknown speakers {unknown}; FSDD has {list(FSDD_SPEAKERS)}."
                )
        if config.audio_split == "speaker":
            if not test_speakers or set(test_speakers) & set(val_speakers):
                raise ValueError(
                    "data.test_speakers must be non-empty and disjoint from data.val_speakers; "
                    f"got {test_speakers} and {val_speakers}."
                )
            if len(set(test_speakers) | set(val_speakers)) >= len(FSDD_SPEAKERS):
                raise ValueError("Leave at least one FSDD speaker for training.")
        else:
            takes = set(config.test_takes) | set(config.val_takes)
            if not config.test_takes or set(config.test_takes) & set(config.val_takes):
                raise ValueError(
                    "data.test_takes must be non-empty and disjoint from data.val_takes; got "
                    f"{list(config.test_takes)} and {list(config.val_takes)}."
                )
            if any(t < 0 or t > 49 for t in takes) or len(takes) >= 50:
                raise ValueError("FSDD takes are 0-49; leave some takes for training.")
        if not 0 < config.pca_fraction < 1:
            raise ValueError(f"data.pca_fraction must be in (0, 1), got {config.pca_fraction}.")
        if config.noise_power is None or config.noise_power < 0 or config.noise_variants < 1:
            raise ValueError("data.noise_power must be >= 0 and data.noise_variants >= 1.")
        if config.keep_waveforms and config.audio_features != "log_mel":
            raise ValueError(
                "data.keep_waveforms=true needs log-mel features: set data.protocol=clean "
                "(scenario=[background_noise] recomputes the log-mel spectrogram)."
            )
        for key in ("val_fraction", "test_fraction"):
            if not 0 < getattr(config, key) < 1:
                raise ValueError(f"data.{key} must be in (0, 1), got {getattr(config, key)}.")
        if config.val_fraction + config.test_fraction >= 1:
            raise ValueError("data.val_fraction + data.test_fraction must be below 1.")
        if config.max_images < 0 or 0 < config.max_images < 30:
            raise ValueError(f"data.max_images must be 0 (all) or >= 30, got {config.max_images}.")
        if config.audio_seconds <= 0 or config.n_mels < 8 or config.win_length > config.n_fft:
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
    fields["cache_format"] = 2
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


MFAS_BINS = 112
"""Frequency bins and frames of the ``mfas_psd`` spectrogram (slyviacassell/_MFAS
datasets/avmnist_gen.py: ``f_length=112, t_length=112``)."""


def pca_energy_removal(
    images: np.ndarray,
    rule: str,
    fraction: float,
    chunk: int = 8192,
    scale: float = 1.0,
    dtype: Any = np.float32,
) -> tuple[np.ndarray, int, float]:
    """Project images on their leading principal components (AV-MNIST's image degradation).

    The principal axes are the eigenvectors of the images' covariance. ``rule="energy"`` keeps
    the ``k`` leading components where ``k`` is the first index whose cumulative explained
    variance exceeds ``fraction`` (so the kept variance is the largest prefix not above it; at
    least one component), as Yanis-Gerst/_MFAS ``datasets/avmnist_gen.py`` computes it;
    ``rule="components"`` keeps ``int(d * fraction)`` components, as slyviacassell/_MFAS
    ``datasets/avmnist_gen.py`` does. As in both, the reconstruction is the centred projection
    ``(x - mean) V_k V_k^T`` (the mean is not added back).

    Args:
        images: ``[N, d]`` pixels (any real dtype).
        rule: ``energy`` or ``components``.
        fraction: The fraction of variance (``energy``) or of components (``components``).
        chunk: Rows per matrix product (bounds the float64 temporaries).
        scale: Factor applied to the reconstructions.
        dtype: Their dtype.

    Returns:
        ``([N, d] reconstructions x scale, components kept, variance fraction kept)``.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(200, 6)) * [5, 3, 1, 1, 1, 1]
        >>> rec, k, kept = pca_energy_removal(x, "energy", 0.8)
        >>> k, kept <= 0.8, rec.shape
        (1, True, (200, 6))
    """
    n, d = images.shape
    mean = np.zeros(d)
    for k in range(0, n, chunk):
        mean += images[k : k + chunk].sum(0, dtype=np.float64)
    mean /= n
    cov = np.zeros((d, d))
    for k in range(0, n, chunk):
        block = images[k : k + chunk].astype(np.float64) - mean
        cov += block.T @ block
    eigval, eigvec = np.linalg.eigh(cov / max(n - 1, 1))
    eigval, eigvec = np.clip(eigval[::-1], 0.0, None), eigvec[:, ::-1]
    ratio = np.cumsum(eigval) / eigval.sum()
    if rule == "energy":
        keep = max(int(np.argmax(ratio > fraction)), 1)
    elif rule == "components":
        keep = max(int(d * fraction), 1)
    else:
        raise ValueError(f"Unknown PCA rule {rule!r}; valid: 'energy', 'components'.")
    basis = eigvec[:, :keep]
    out = np.empty((n, d), dtype=dtype)
    for k in range(0, n, chunk):
        block = images[k : k + chunk].astype(np.float64) - mean
        out[k : k + chunk] = (block @ basis) @ basis.T * scale
    return out, keep, float(ratio[keep - 1])


def mfas_segments(length: int, frames: int = MFAS_BINS) -> tuple[int, int]:
    """Segment length and overlap that cut ``length`` samples into exactly ``frames`` frames.

    The smallest segment length ``i`` (from ``ceil(length / frames) - 1`` up) and, for it, the
    smallest overlap ``j < i`` with ``(frames - 1)(i - j) <= length - i < frames (i - j)``, the
    search of slyviacassell/_MFAS ``datasets/avmnist_gen.py`` (``wav_to_spectrogram``).

    Raises:
        CorruptDataError: For a recording too short to make ``frames`` frames.

    Example:
        >>> mfas_segments(8000)
        (71, 0)
    """
    for i in range(max(-(-length // frames) - 1, 1), length):
        j = np.arange(i)
        ok = ((frames + 1) * i - frames * j > length) & (length >= frames * i - (frames - 1) * j)
        if ok.any():
            return i, int(np.argmax(ok))
    raise CorruptDataError(f"A recording of {length} samples is too short for {frames} frames.")


def mfas_spectrogram(signal: np.ndarray, sample_rate: int, bins: int = MFAS_BINS) -> np.ndarray:
    """``[bins, bins]`` power spectral density of a whole recording (AV-MNIST's audio input).

    ``scipy.signal.spectrogram`` with a boxcar window, ``nfft = 2 (bins - 1) + 1`` (so
    ``bins`` one-sided frequencies) and the segment length and overlap of
    :func:`mfas_segments` (so ``bins`` frames), as slyviacassell/_MFAS
    ``datasets/avmnist_gen.py`` computes it: the time resolution depends on the length.

    Example:
        >>> mfas_spectrogram(np.random.default_rng(0).normal(size=6000), 8000).shape
        (112, 112)
    """
    from scipy.signal import spectrogram

    nperseg, noverlap = mfas_segments(signal.shape[0], bins)
    nfft = (bins - 1) * 2 + 1
    if nperseg > nfft:
        raise CorruptDataError(
            f"A recording of {signal.shape[0]} samples is too long for a {bins}x{bins} "
            f"spectrogram (segments of {nperseg} > nfft {nfft})."
        )
    _, _, power = spectrogram(
        signal.astype(np.float64),
        fs=sample_rate,
        window="boxcar",
        nperseg=nperseg,
        noverlap=noverlap,
        nfft=nfft,
    )
    return power


def read_noise_clips(
    data_dir: Path, sample_rate: int = FSDD_SAMPLE_RATE
) -> list[tuple[str, np.ndarray]]:
    """One ESC-10 clip per category (categories by ESC-50 target, first file by name), resampled.

    Resampling is ``scipy.signal.resample`` to ``ceil(seconds x sample_rate)`` samples, as in
    slyviacassell/_MFAS ``datasets/avmnist_gen.py``.

    Raises:
        MissingDataError: Without ``esc10/meta/esc10.csv`` or a clip it lists.
    """
    import csv

    from scipy.signal import resample

    meta = data_dir / "esc10" / "meta" / "esc10.csv"
    if not meta.is_file():
        raise MissingDataError(
            f"{meta} is missing: data.noise_power > 0 mixes ESC-10 noise into the audio. Put the "
            "ESC-10 part of ESC-50 (github.com/karolpiczak/ESC-50: audio/ and meta/, rows with "
            "esc10=True in meta/esc10.csv) in <data_dir>/esc10, or set data.noise_power=0."
        )
    with meta.open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("filename")]
    first: dict[int, str] = {}
    for row in sorted(rows, key=lambda r: r["filename"]):
        first.setdefault(int(row["target"]), row["filename"])
    clips = []
    for target in sorted(first):
        path = data_dir / "esc10" / "audio" / first[target]
        if not path.is_file():
            raise MissingDataError(f"{path} (listed in {meta}) is missing.")
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = data.mean(1)
        clips.append((path.name, resample(mono, int(np.ceil(mono.shape[0] / rate * sample_rate)))))
    return clips


def _assign_audio(config: AVMNISTConfig, recordings: FSDDRecordings) -> np.ndarray:
    """The split (``train`` / ``val`` / ``test``) whose images each recording pairs with."""
    key: np.ndarray
    test: list[Any]
    val: list[Any]
    if config.audio_split == "speaker":
        key = np.array(recordings.speaker)
        test, val = list(config.test_speakers or []), list(config.val_speakers or [])
    else:
        key = recordings.take
        test, val = list(config.test_takes), list(config.val_takes)
    return np.where(np.isin(key, test), "test", np.where(np.isin(key, val), "val", "train"))


def _read_recordings(
    config: AVMNISTConfig, recordings: FSDDRecordings, skipped: SkippedFiles
) -> tuple[FSDDRecordings, list[np.ndarray]]:
    """Read every recording; corrupt or duplicated ones raise, or are skipped and counted."""
    kept: list[int] = []
    waves: list[np.ndarray] = []
    seen: dict[str, Path] = {}
    for i, path in enumerate(recordings.paths):
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                raise CorruptDataError(
                    f"{path}: the same content as {seen[digest].name}; a duplicated recording "
                    "would be counted twice."
                )
            waves.append(read_wav(path))
            seen[digest] = path
        except CorruptDataError as error:
            if config.on_error == "raise":
                raise CorruptDataError(
                    f"{error} Replace or remove the file, or set data.on_error=skip to drop bad "
                    "recordings (counted)."
                ) from None
            skipped.add(path, error)
        else:
            kept.append(i)
    if skipped.count:
        if not kept:
            raise CorruptDataError(f"Every FSDD recording is bad, e.g. {skipped.errors[:3]}.")
        skipped.report()
        recordings = FSDDRecordings(
            [recordings.paths[i] for i in kept],
            recordings.digit[kept],
            [recordings.speaker[i] for i in kept],
            recordings.take[kept],
        )
    return recordings, waves


def _image_pools(
    config: AVMNISTConfig, mnist: dict[str, tuple[np.ndarray, np.ndarray, Path, Path]]
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """One pool per MNIST file: PCA-degraded float16 (fitted per file, as the source) or uint8."""
    pools: dict[str, Tensor] = {}
    pca: dict[str, Any] = {"rule": config.image_pca, "fraction": config.pca_fraction}
    for split, (x, _, _, _) in mnist.items():
        if config.image_pca == "none":
            pools[split] = torch.from_numpy(np.array(x, dtype=np.uint8)).unsqueeze(1)
            continue
        rec, keep, kept = pca_energy_removal(
            x.reshape(x.shape[0], -1),
            config.image_pca,
            config.pca_fraction,
            scale=1 / 255.0,  # MultiBench get_data.py: normalize_image divides by 255
            dtype=np.float16,
        )
        pools[split] = torch.from_numpy(rec).view(-1, 1, 28, 28)
        pca[split] = {"components": keep, "kept_variance": kept}
    return pools, pca


def _image_splits(
    config: AVMNISTConfig,
    mnist: dict[str, tuple[np.ndarray, np.ndarray, Path, Path]],
    rng: np.random.Generator,
) -> tuple[dict[str, tuple[str, np.ndarray]], str]:
    """Per split: the MNIST file (``train`` / ``test``) its images come from and their rows."""
    pools: dict[str, tuple[str, np.ndarray]] = {}
    if "train" in mnist:
        n = mnist["train"][0].shape[0]
        if config.image_split == "index" and "test" in mnist:
            n_val = round(n * 5000 / 60000)
            pools["train"] = ("train", np.arange(n - n_val))
            pools["val"] = ("train", np.arange(n - n_val, n))
            protocol = (
                f"MNIST train rows 0-{n - n_val - 1} → train, {n - n_val}-{n - 1} → val "
                "(MultiBench get_data.py), MNIST test split → test"
            )
        else:
            order = rng.permutation(n)
            n_val = round(n * config.val_fraction)
            pools["val"] = ("train", np.sort(order[:n_val]))
            pools["train"] = ("train", np.sort(order[n_val:]))
            protocol = "MNIST train split → train/val (seeded), MNIST test split → test"
            if "test" not in mnist:
                n_test = round(n * config.test_fraction)
                pools["test"] = ("train", np.sort(order[n_val : n_val + n_test]))
                pools["train"] = ("train", np.sort(order[n_val + n_test :]))
                protocol = "only the MNIST train split is on disk: seeded train/val/test"
        if "test" in mnist:
            pools["test"] = ("test", np.arange(mnist["test"][0].shape[0]))
    else:
        n = mnist["test"][0].shape[0]
        order = rng.permutation(n)
        n_test = round(n * config.test_fraction)
        n_val = round(n * config.val_fraction)
        pools["test"] = ("test", np.sort(order[:n_test]))
        pools["val"] = ("test", np.sort(order[n_test : n_test + n_val]))
        pools["train"] = ("test", np.sort(order[n_test + n_val :]))
        protocol = (
            "only the MNIST test split is on disk: its images are split "
            f"{1 - config.val_fraction - config.test_fraction:.2f}/{config.val_fraction:.2f}/"
            f"{config.test_fraction:.2f} into train/val/test"
        )
    if config.max_images:
        total = sum(p[1].shape[0] for p in pools.values())
        for split, (origin, rows) in list(pools.items()):
            ys = mnist[origin][1]
            size = max(10, round(rows.shape[0] * config.max_images / total))
            pools[split] = (origin, rows[_stratified_subset(ys[rows], size, rng)])
    return pools, protocol


def _build(config: AVMNISTConfig, data_dir: Path) -> dict[str, Any]:
    mnist = _load_mnist(data_dir)
    recordings = read_fsdd(data_dir / SOURCES.get("fsdd").folder / "recordings")
    rng = np.random.default_rng(config.seed)
    image_rows, image_protocol = _image_splits(config, mnist, rng)
    skipped = SkippedFiles("avmnist")
    recordings, waves = _read_recordings(config, recordings, skipped)
    audio_split = _assign_audio(config, recordings)
    for split in ("train", "test"):
        if not (audio_split == split).any():
            raise ValueError(f"No FSDD recording is left for the {split} split.")
    noise = read_noise_clips(data_dir) if (config.noise_power or 0.0) > 0 else []
    n_train_noise = max(1, round(len(noise) * 0.8)) if noise else 0
    noise_pool = {
        "train": list(range(n_train_noise)),
        "val": list(range(n_train_noise)),
        "test": list(range(n_train_noise, len(noise))) or list(range(n_train_noise)),
    }

    # Pair images with recordings (and noise clips): each sample's audio key.
    per_split: dict[str, dict[str, np.ndarray]] = {}
    for split in ("train", "val", "test"):
        origin, rows = image_rows[split]
        labels = mnist[origin][1][rows]
        own = np.flatnonzero(audio_split == split)
        pool = own if own.size else np.flatnonzero(audio_split == "train")
        recording = pool[
            pair_by_label(labels, recordings.digit[pool], config.seed + _split_offset(split))
        ]
        clip = np.full(rows.shape[0], -1, dtype=np.int64)
        if noise:
            clips = np.array(noise_pool[split])
            variant = np.random.default_rng(config.seed + 10 + _split_offset(split)).integers(
                0, min(config.noise_variants, clips.size), rows.shape[0]
            )
            clip = clips[(recording + variant) % clips.size]
        per_split[split] = {"rows": rows, "label": labels, "recording": recording, "clip": clip}
    width = len(noise) + 1
    keys = np.unique(
        np.concatenate([p["recording"] * width + p["clip"] + 1 for p in per_split.values()])
    )

    # Audio features of each unique (recording, noise clip), standardised with the training ones.
    if config.audio_features == "log_mel":
        length = round(config.audio_seconds * FSDD_SAMPLE_RATE)
        fixed = np.stack([fix_length(w, length) for w in waves])
        signals = [
            fixed[k // width]
            + (
                float(config.noise_power or 0.0) * fix_length(noise[k % width - 1][1], length)
                if k % width
                else 0
            )
            for k in keys
        ]
        feats = torch.cat(
            [
                log_mel_spectrogram(
                    torch.from_numpy(np.stack(signals[k : k + 256]).astype(np.float32)),
                    FSDD_SAMPLE_RATE,
                    config.n_fft,
                    config.hop_length,
                    config.win_length,
                    config.n_mels,
                )
                for k in range(0, len(signals), 256)
            ]
        ).numpy()
    else:
        feats = np.empty((keys.shape[0], MFAS_BINS, MFAS_BINS), dtype=np.float32)
        for row, k in enumerate(keys):
            wave, c = waves[k // width], k % width - 1
            if c >= 0:
                n = min(wave.shape[0], noise[c][1].shape[0])
                wave = wave[:n] + float(config.noise_power or 0.0) * noise[c][1][:n]
            try:
                feats[row] = np.log(mfas_spectrogram(wave, FSDD_SAMPLE_RATE) + 1e-10)
            except CorruptDataError as error:
                raise CorruptDataError(f"{recordings.paths[k // width]}: {error}") from None
    train_keys = np.isin(
        keys, per_split["train"]["recording"] * width + per_split["train"]["clip"] + 1
    )
    count, total, total_sq = 0, 0.0, 0.0
    for r in np.flatnonzero(train_keys):
        count += feats[r].size
        total += float(feats[r].sum(dtype=np.float64))
        total_sq += float(np.square(feats[r], dtype=np.float64).sum())
    mean = total / count
    std = float(np.sqrt(max(total_sq / count - mean * mean, 0.0) * count / max(count - 1, 1)))
    audio_dtype = np.float16 if config.audio_features == "mfas_psd" else np.float32
    pool = np.empty(feats.shape, dtype=audio_dtype)
    for k in range(0, feats.shape[0], 512):
        pool[k : k + 512] = (feats[k : k + 512] - mean) / std
    del feats
    audio_pool = torch.from_numpy(pool).unsqueeze(1)

    image_pools, pca = _image_pools(config, mnist)
    out: dict[str, Any] = {
        "pools": {"audio": audio_pool, **{f"image_{k}": v for k, v in image_pools.items()}},
        "splits": {},
        "recordings": [p.name for p in recordings.paths],
    }
    for split, part in per_split.items():
        out["splits"][split] = {
            "image_pool": f"image_{image_rows[split][0]}",
            "image_index": torch.from_numpy(part["rows"].astype(np.int64)),
            "audio_rows": torch.from_numpy(
                np.searchsorted(keys, part["recording"] * width + part["clip"] + 1)
            ),
            "label": torch.from_numpy(part["label"].astype(np.int64)),
            "recording": torch.from_numpy(part["recording"].astype(np.int64)),
            "noise_clip": torch.from_numpy(part["clip"]),
            "image_origin": "train" if image_rows[split][0] == "train" else "t10k",
        }
    speaker = np.array(recordings.speaker)
    out["speakers"] = {
        s: sorted(set(speaker[np.unique(per_split[s]["recording"])].tolist()))
        for s in ("train", "val", "test")
    }
    out["takes"] = {
        s: sorted(set(recordings.take[np.unique(per_split[s]["recording"])].tolist()))
        for s in ("train", "val", "test")
    }
    out["image_protocol"] = image_protocol
    out["mnist_files"] = sorted(
        {str(v[2]) for v in mnist.values()} | {str(v[3]) for v in mnist.values()}
    )
    out["audio_norm"] = (mean, std)
    out["noise_clips"] = [name for name, _ in noise]
    out["noise_pool"] = (
        {s: [noise[i][0] for i in v] for s, v in noise_pool.items()} if noise else {}
    )
    out["pca"] = pca
    out["unique_audio"] = int(keys.shape[0])
    if config.keep_waveforms:
        length = round(config.audio_seconds * FSDD_SAMPLE_RATE)
        out["waveforms"] = torch.from_numpy(
            np.stack([fix_length(w, length) for w in waves]).astype(np.float32)
        )
    out["skipped"] = skipped.as_info()
    return out


def _split_offset(split: str) -> int:
    """A fixed integer offset per split name (so each split's pairing draw differs)."""
    return {"train": 0, "val": 1, "test": 2}[split]


def _input_files(data_dir: Path, noise: bool = False) -> list[Path]:
    mnist_root = data_dir / SOURCES.get("mnist").folder
    files = (
        sorted(p for p in mnist_root.glob("*-ubyte*") if p.is_file()) if mnist_root.is_dir() else []
    )
    fsdd = data_dir / SOURCES.get("fsdd").folder / "recordings"
    esc = data_dir / "esc10"
    extra = (
        [esc / "meta" / "esc10.csv", *_wav_files(esc / "audio")]
        if noise and (esc / "meta" / "esc10.csv").is_file()
        else []
    )
    return files + _wav_files(fsdd) + extra


@DATASETS.register("avmnist", config=AVMNISTConfig, sources=("mnist", "fsdd"))
def make_avmnist(**kwargs: Any) -> Splits:
    """AV-MNIST from the original files: MNIST images paired by digit with FSDD spoken digits.

    Args:
        **kwargs: Fields of :class:`AVMNISTConfig` (``name`` excluded).

    Returns:
        Splits with modalities ``image`` ``[N, 1, 28, 28]`` and ``audio`` ``[N, 1, F, T]``
        (``112 x 112`` for ``mfas_psd``, ``n_mels x frames`` for ``log_mel``; standardised with
        the training spectrograms' statistics), as
        :class:`~modalab.data.indexed.IndexedMultimodalDataset` gathering from memory-mapped
        pools of the unique images and spectrograms. ``info`` has the protocol, split sizes,
        speakers and takes per split, the recording (``info.extra["recording"][split]`` indexes
        ``info.extra["recordings"]``) and noise clip of each sample, the PCA kept, the files read,
        the skipped files, the cache path and build time.

    Raises:
        MissingDataError: MNIST idx files, FSDD recordings or ESC-10 clips absent.
        CorruptDataError: A truncated, empty or duplicated wav, a wrong idx magic number, ...
    """
    config = AVMNISTConfig(**kwargs)
    config.validate()
    config = config.resolved()
    data_dir = resolve_data_dir(config.data_dir)
    start = time.perf_counter()
    built: dict[str, Any] | None = None
    cache_path: Path | None = None
    if config.use_cache:
        inputs = _input_files(data_dir, (config.noise_power or 0.0) > 0)
        if inputs:
            cache_path = (
                _cache_root(config.cache_dir) / f"avmnist-{_fingerprint(inputs, config)}.pt"
            )
            if cache_path.is_file():
                try:
                    built = torch.load(cache_path, weights_only=True, mmap=True)
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
            del built
            built = torch.load(cache_path, weights_only=True, mmap=True)
    assert built is not None
    pools = built["pools"]
    datasets = {}
    for split, part in built["splits"].items():
        extras = {"audio_recording": part["recording"]} if config.keep_waveforms else None
        image_pool = pools[part["image_pool"]]
        datasets[split] = IndexedMultimodalDataset(
            {"image": image_pool, "audio": pools["audio"]},
            {"image": part["image_index"], "audio": part["audio_rows"]},
            part["label"],
            divisor={"image": 255.0} if image_pool.dtype == torch.uint8 else None,
            num_classes=10,
            extras=extras,
        )
    recipe = {
        "kind": "log_mel",
        "sample_rate": FSDD_SAMPLE_RATE,
        "n_fft": config.n_fft,
        "hop_length": config.hop_length,
        "win_length": config.win_length,
        "n_mels": config.n_mels,
        "mean": built["audio_norm"][0],
        "std": built["audio_norm"][1],
    }
    info = DataInfo(
        name="avmnist",
        sizes={s: len(d) for s, d in datasets.items()},
        class_names=[str(d) for d in range(10)],
        waveforms={"audio": built["waveforms"]} if config.keep_waveforms else None,
        audio_features={"audio": recipe} if config.keep_waveforms else None,
        skipped=built.get("skipped", {"count": 0, "files": [], "errors": []}),
        build_seconds=time.perf_counter() - start,
        encoders=dict(PROTOCOL_ENCODERS[config.protocol]) if config.reference_encoders else None,
        extra={
            "protocol": config.protocol,
            "audio_split": config.audio_split,
            "speakers": built["speakers"],
            "takes": built["takes"],
            "recordings": built["recordings"],
            "recording": {s: p["recording"] for s, p in built["splits"].items()},
            "noise_clip": {s: p["noise_clip"] for s, p in built["splits"].items()},
            "noise_clips": built["noise_clips"],
            "noise_pool": built["noise_pool"],
            "image_index": {s: p["image_index"] for s, p in built["splits"].items()},
            "image_origin": {s: p["image_origin"] for s, p in built["splits"].items()},
            "image_protocol": built["image_protocol"],
            "pca": built["pca"],
            "unique_audio": built["unique_audio"],
            "mnist_files": built["mnist_files"],
            "audio_norm": tuple(built["audio_norm"]),
            "data_dir": str(data_dir),
            "cache_path": str(cache_path) if cache_path else "",
            "cache_bytes": cache_path.stat().st_size if cache_path else 0,
            "from_cache": from_cache,
        },
    )
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
