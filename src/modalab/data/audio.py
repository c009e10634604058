"""Audio utilities shared by the audio datasets and the audio scenarios.

Reading WAV files with their integrity checks (:func:`read_wav`), cutting a waveform to a
fixed length (:func:`fix_length`), log-mel spectrograms (:func:`log_mel_spectrogram`) and the
features a dataset declares for a spectrogram modality (:func:`waveform_features`, which a
scenario corrupting the waveform uses to recompute them). Datasets (``avmnist``, ``cremad``)
and scenarios (``background_noise``) import them from here, not from one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from modalab.data.files import CorruptDataError

__all__ = ["fix_length", "log_mel_spectrogram", "read_wav", "waveform_features"]


def _declared_frames(path: Path) -> int | None:
    """Frames the RIFF/WAVE header declares (``data`` chunk size / block align), or ``None``."""
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        block_align = 0
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            size = int.from_bytes(chunk[4:8], "little")
            if chunk[:4] == b"fmt ":
                fmt = handle.read(size)
                block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
                handle.seek(size % 2, 1)
            elif chunk[:4] == b"data":
                return size // block_align if block_align else None
            else:
                handle.seek(size + size % 2, 1)


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """Read a mono wav file (PCM or IEEE float) as float32, checking rate and completeness.

    Raises:
        CorruptDataError: Unreadable, truncated (fewer frames than its header declares),
            empty (zero frames), not mono, or not at ``sample_rate``.
    """
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        declared = _declared_frames(path)
    except (RuntimeError, sf.LibsndfileError, EOFError, OSError) as error:
        raise CorruptDataError(f"{path}: not a readable wav file ({error}).") from None
    if declared is not None and data.shape[0] < declared:
        raise CorruptDataError(
            f"{path}: truncated; its header declares {declared} frames but only "
            f"{data.shape[0]} are in the file."
        )
    if data.shape[0] == 0:
        raise CorruptDataError(
            f"{path}: holds zero audio frames (an empty recording, not silence)."
        )
    if rate != sample_rate or data.shape[1] != 1:
        raise CorruptDataError(
            f"{path}: {data.shape[1]} channel(s) at {rate} Hz; expected mono at {sample_rate} Hz."
        )
    return data[:, 0]


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
    """The features a dataset computes from waveforms, from its ``info.audio_features`` recipe.

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


def fix_length(signal: np.ndarray, length: int) -> np.ndarray:
    """Centre-crop or right-pad with zeros to ``length`` samples.

    Example:
        >>> fix_length(np.arange(5), 3).tolist(), fix_length(np.arange(2), 4).tolist()
        ([1, 2, 3], [0, 1, 0, 0])
    """
    if signal.shape[0] >= length:
        start = (signal.shape[0] - length) // 2
        return signal[start : start + length]
    return np.pad(signal, (0, length - signal.shape[0]))
