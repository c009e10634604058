"""Noisy modalities: noise at a given SNR, occlusion, blur, real background noise, word dropout.

Every corruption works on the data's own value range: integer pixels (``uint8``) are
converted to float on the same 0–255 scale before noise is added (never wrapped around), and
the signal-to-noise ratio is measured per sample as ``10 log10(P_signal / P_noise)`` with
``P = mean(x ** 2)``, so that an SNR means the same on 0–1 and 0–255 data. Only samples whose
modality is present are corrupted (an absent modality stays a zero fill).

References: Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ICLR 2019); Liang et al., "MultiBench: Multiscale Benchmarks
for Multimodal Representation Learning" (NeurIPS 2021 Datasets and Benchmarks), which mixes
ESC-50 environmental noise into AV-MNIST audio (Piczak, "ESC: Dataset for Environmental Sound
Classification", ACM MM 2015).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from modalab.data.audio import waveform_features
from modalab.data.files import DATA_ENV, DEFAULT_DATA_DIR, resolve_data_dir
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset
from modalab.scenarios.base import Scenario, check_fraction, check_modalities
from modalab.scenarios.registry import SCENARIOS

__all__ = [
    "BackgroundNoise",
    "Blur",
    "GaussianNoise",
    "Occlusion",
    "WordDropout",
    "load_noise_bank",
    "signal_power",
    "snr_db",
]


def signal_power(x: Tensor) -> Tensor:
    """Per-sample power ``mean(x ** 2)`` over all but the first dimension: ``[N, ...] -> [N]``.

    Example:
        >>> signal_power(torch.tensor([[1.0, -1.0], [2.0, 0.0]])).tolist()
        [1.0, 2.0]
    """
    return x.double().flatten(1).pow(2).mean(dim=1)


def snr_db(clean: Tensor, noisy: Tensor) -> Tensor:
    """Measured per-sample SNR in dB of ``noisy`` against ``clean``: ``[N, ...] -> [N]``.

    Example:
        >>> clean = torch.ones(1, 100)
        >>> round(snr_db(clean, clean + 0.1).item(), 4)
        20.0
    """
    noise = noisy.double() - clean.double()
    return 10 * torch.log10(signal_power(clean) / signal_power(noise))


def _as_float(x: Tensor, name: str, scenario: str) -> Tensor:
    """Float copy of a modality on its own scale; token ids are refused."""
    if x.dtype == torch.uint8 or x.is_floating_point():
        return x.float() if x.dtype == torch.uint8 else x.clone()
    raise ValueError(
        f"scenario {scenario} cannot corrupt modality {name!r} of dtype {x.dtype} (token ids "
        "or another integer code); use scenario word_dropout for tokens, or leave it out of "
        f"{scenario}.modalities."
    )


def _float_modalities(dataset: MultimodalTensorDataset) -> list[str]:
    return [m for m, x in dataset.inputs.items() if x.is_floating_point() or x.dtype == torch.uint8]


def _rows_mask(n: int, fraction: float, generator: torch.Generator) -> Tensor:
    """Exactly ``round(fraction * n)`` rows chosen uniformly."""
    rows = torch.zeros(n, dtype=torch.bool)
    rows[torch.randperm(n, generator=generator)[: round(fraction * n)]] = True
    return rows


def _broadcast(rows: Tensor, like: Tensor) -> Tensor:
    return rows.view((-1,) + (1,) * (like.dim() - 1))


def _scale_to_snr(signal: Tensor, noise: Tensor, snr: float) -> Tensor:
    """``noise`` rescaled per sample so that ``P(signal) / P(noise) = 10 ** (snr / 10)``."""
    target = signal_power(signal) / 10 ** (snr / 10)
    current = signal_power(noise).clamp_min(1e-30)
    gain = torch.sqrt(target / current).to(noise.dtype)
    return noise * _broadcast(gain, noise)


@SCENARIOS.register("gaussian_noise")
@dataclass
class GaussianNoise(Scenario):
    """Additive white Gaussian noise at a given SNR (dB), per sample, on the data's scale.

    The noise of each sample is drawn and rescaled so that its power is exactly
    ``P_signal / 10 ** (snr_db / 10)``; ``snr_db=inf`` is the clean data, and an all-zero
    sample (no signal power) stays unchanged. Integer (``uint8``)
    inputs become float on the same scale. ``clip`` optionally clamps the result to a value
    range (which changes the realised SNR).

    Attributes:
        snr_db: Signal-to-noise ratio in dB (the severity: lower is noisier).
        modalities: Modalities to corrupt; empty means every float or uint8 modality.
        fraction: Fraction of samples corrupted (exact, chosen uniformly).
        clip: Optional ``[low, high]`` range the noisy data is clamped to.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> x = torch.rand(8, 3, 4, 4)
        >>> ds = MultimodalTensorDataset({"image": x}, label=torch.zeros(8).long())
        >>> out = GaussianNoise(snr_db=10.0).set_random_state(0)(ds)
        >>> snr_db(x, out.inputs["image"]).round().tolist()
        [10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]
    """

    severity_param = "snr_db"
    harder = "lower"
    snr_db: float = math.inf
    modalities: list[str] = field(default_factory=list)
    fraction: float = 1.0
    clip: list[float] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.fraction, "scenario gaussian_noise.fraction")
        if math.isnan(self.snr_db) or self.snr_db == -math.inf:
            raise ValueError(
                "scenario gaussian_noise.snr_db must be a number or +inf (no noise), got "
                f"{self.snr_db}."
            )
        if self.clip is not None and (len(self.clip) != 2 or self.clip[0] >= self.clip[1]):
            raise ValueError(
                f"scenario gaussian_noise.clip={self.clip} must be [low, high] with low < high."
            )

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the corrupted rows and unit Gaussian noise for each modality."""
        names = list(self.modalities) or _float_modalities(dataset)
        check_modalities(names, dataset, "scenario gaussian_noise")
        n = len(dataset)
        self._noise: dict[str, tuple[Tensor, Tensor]] = {}
        for m in names:
            shape = dataset.inputs[m].shape
            rows = _rows_mask(n, self.fraction, self.generator) & dataset.present[m]
            self._noise[m] = (rows, torch.randn(shape, generator=self.generator))

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Add the drawn noise at the configured SNR."""
        inputs = dict(dataset.inputs)
        for m, (rows, noise) in self._noise.items():
            x = _as_float(dataset.inputs[m], m, "gaussian_noise")
            if math.isinf(self.snr_db) and self.snr_db > 0:
                inputs[m] = x
                continue
            scaled = _scale_to_snr(x, noise.to(x.dtype), self.snr_db)
            noisy = x + scaled * _broadcast(rows, x).to(x.dtype)
            if self.clip is not None:
                noisy = noisy.clamp(self.clip[0], self.clip[1])
            inputs[m] = noisy
        return dataset.replace(inputs=inputs)


@SCENARIOS.register("occlusion")
@dataclass
class Occlusion(Scenario):
    """Occlusion: a random square patch of an image, or a random segment of a 1-D signal.

    On ``[N, C, H, W]`` inputs a patch of ``round(sqrt(area) * H) × round(sqrt(area) * W)``
    pixels is set to ``value``; on ``[N, C, T]`` or ``[N, T]`` inputs a segment of
    ``round(area * T)`` steps is. Positions are uniform over the placements that fit.

    Attributes:
        area: Fraction of the image area / signal length occluded (the severity).
        modalities: Modalities to occlude; empty means every float or uint8 modality.
        value: The fill value of the occluded region.
        fraction: Fraction of samples occluded (exact, chosen uniformly).

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset({"image": torch.ones(2, 1, 10, 10)}, torch.zeros(2).long())
        >>> out = Occlusion(area=0.25).set_random_state(0)(ds)
        >>> (out.inputs["image"] == 0).flatten(1).sum(1).tolist()
        [25, 25]
    """

    severity_param = "area"
    harder = "higher"
    area: float = 0.0
    modalities: list[str] = field(default_factory=list)
    value: float = 0.0
    fraction: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.area, "scenario occlusion.area")
        check_fraction(self.fraction, "scenario occlusion.fraction")

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the occluded rows and each occlusion's position."""
        names = list(self.modalities) or _float_modalities(dataset)
        check_modalities(names, dataset, "scenario occlusion")
        n = len(dataset)
        self._draws: dict[str, tuple[Tensor, Tensor]] = {}
        for m in names:
            rows = _rows_mask(n, self.fraction, self.generator) & dataset.present[m]
            self._draws[m] = (rows, torch.rand(n, 2, generator=self.generator))

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Fill the drawn regions with ``value``."""
        inputs = dict(dataset.inputs)
        for m, (rows, position) in self._draws.items():
            x = _as_float(dataset.inputs[m], m, "occlusion")
            if x.dim() == 4:
                h, w = x.shape[-2:]
                ph, pw = round(math.sqrt(self.area) * h), round(math.sqrt(self.area) * w)
                top = (position[:, 0] * (h - ph + 1)).long().view(-1, 1, 1)
                left = (position[:, 1] * (w - pw + 1)).long().view(-1, 1, 1)
                yy = torch.arange(h).view(1, h, 1)
                xx = torch.arange(w).view(1, 1, w)
                region = (yy >= top) & (yy < top + ph) & (xx >= left) & (xx < left + pw)
                region = region.unsqueeze(1)
            elif x.dim() in (2, 3):
                t = x.shape[-1]
                length = round(self.area * t)
                start = (position[:, 0] * (t - length + 1)).long().view(-1, 1)
                steps = torch.arange(t).view(1, t)
                region = (steps >= start) & (steps < start + length)
                region = region.view(x.shape[0], *([1] * (x.dim() - 2)), t)
            else:
                raise ValueError(
                    f"scenario occlusion needs [N, C, H, W] or [N, (C,) T] inputs; modality "
                    f"{m!r} has shape {tuple(x.shape)}."
                )
            region = region & _broadcast(rows, region)
            inputs[m] = torch.where(region, torch.tensor(self.value, dtype=x.dtype), x)
        return dataset.replace(inputs=inputs)


@SCENARIOS.register("blur")
@dataclass
class Blur(Scenario):
    """Gaussian blur of images (kornia ``gaussian_blur2d``, reflect border).

    The kernel size is ``2 * ceil(3 * sigma) + 1``; ``sigma=0`` is the clean image.

    Attributes:
        sigma: Standard deviation of the blur in pixels (the severity).
        modalities: Image modalities to blur; empty means every ``[N, C, H, W]`` float or
            uint8 modality.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> x = torch.zeros(1, 1, 9, 9)
        >>> x[0, 0, 4, 4] = 1.0
        >>> out = Blur(sigma=1.0)(MultimodalTensorDataset({"image": x}, torch.zeros(1).long()))
        >>> round(out.inputs["image"].sum().item(), 4), out.inputs["image"][0, 0, 4, 4] < 1
        (1.0, tensor(True))
    """

    severity_param = "sigma"
    harder = "higher"
    sigma: float = 0.0
    modalities: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma < 0:
            raise ValueError(f"scenario blur.sigma must be >= 0, got {self.sigma}.")

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Blur the present rows of each image modality."""
        from kornia.filters import gaussian_blur2d

        names = list(self.modalities) or [
            m for m in _float_modalities(dataset) if dataset.inputs[m].dim() == 4
        ]
        check_modalities(names, dataset, "scenario blur")
        inputs = dict(dataset.inputs)
        for m in names:
            x = _as_float(dataset.inputs[m], m, "blur")
            if x.dim() != 4:
                raise ValueError(
                    f"scenario blur needs images [N, C, H, W]; modality {m!r} has shape "
                    f"{tuple(x.shape)}."
                )
            if self.sigma == 0:
                inputs[m] = x
                continue
            k = 2 * math.ceil(3 * self.sigma) + 1
            blurred = gaussian_blur2d(x, (k, k), (self.sigma, self.sigma), border_type="reflect")
            inputs[m] = torch.where(_broadcast(dataset.present[m], x), blurred, x)
        return dataset.replace(inputs=inputs)


@functools.lru_cache(maxsize=4)
def load_noise_bank(folder: str, sample_rate: int) -> Tensor:
    """Every WAV clip under ``folder``, mono, resampled to ``sample_rate``: ``[K, T]``.

    Resampling is polyphase (``scipy.signal.resample_poly``); clips are cut to the shortest.

    Raises:
        ValueError: If the folder holds no WAV file.
    """
    import soundfile
    from scipy.signal import resample_poly

    files = sorted(Path(folder).rglob("*.wav"))
    if not files:
        raise ValueError(
            f"No .wav clips under {folder}; the background_noise scenario needs a folder of "
            "noise clips, e.g. ESC-10 (<data_dir>/esc10/audio from the ESC-50 repository)."
        )
    clips = []
    for path in files:
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        ratio = Fraction(sample_rate, rate).limit_denominator(1000)
        if ratio != 1:
            mono = resample_poly(mono, ratio.numerator, ratio.denominator)
        clips.append(torch.as_tensor(mono, dtype=torch.float32))
    length = min(c.shape[0] for c in clips)
    return torch.stack([c[:length] for c in clips])


@SCENARIOS.register("background_noise")
@dataclass
class BackgroundNoise(Scenario):
    """Real environmental noise mixed into audio at a given SNR (ESC-10 clips by default).

    For each present sample a clip and an offset are drawn, the crop is rescaled so that the
    mixture has exactly ``snr_db`` per sample, and added. Near-silent crops (power below a
    thousandth of the bank's median) are redrawn. The sample rate defaults to the one the
    dataset declares in ``info.sample_rates``.

    A spectrogram modality (AV-MNIST's log-mel ``audio`` with ``data.keep_waveforms=true``)
    is corrupted where noise is physically added, in the waveform, as MultiBench does: the
    dataset's ``info.waveforms`` and ``info.audio_features`` give each sample's waveform
    (through ``extras["<modality>_recording"]``) and the recipe of its features; the mixture
    is mixed at the SNR in the waveform domain and its features recomputed
    (:func:`modalab.data.audio.waveform_features`). Rows left clean keep their input.

    Attributes:
        snr_db: Signal-to-noise ratio in dB (the severity; ``inf``: clean).
        modality: The audio modality (``[N, 1, T]`` or ``[N, T]``).
        data_dir: Data folder (default: ``$MODALAB_DATA``, else ``~/.modalab/data``; the rule
            of :func:`modalab.data.files.resolve_data_dir`).
        clips: Sub-folder of ``data_dir`` whose WAV files are the noise bank.
        sample_rate: Sample rate of the modality; 0 takes it from the dataset's info.
        fraction: Fraction of samples corrupted (exact, chosen uniformly).
    """

    severity_param = "snr_db"
    harder = "lower"
    snr_db: float = math.inf
    modality: str = "audio"
    data_dir: str = ""
    clips: str = "esc10/audio"
    sample_rate: int = 0
    fraction: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.fraction, "scenario background_noise.fraction")
        if math.isnan(self.snr_db) or self.snr_db == -math.inf:
            raise ValueError(
                "scenario background_noise.snr_db must be a number or +inf (no noise), got "
                f"{self.snr_db}."
            )

    def bind(self, info: DataInfo) -> None:
        """Take the modality's sample rate (and, for features, its waveforms) from ``info``."""
        recipe = (info.audio_features or {}).get(self.modality)
        self._recipe: Mapping[str, Any] | None = recipe
        self._waveforms: Tensor | None = None
        if recipe is not None:
            self._waveforms = (info.waveforms or {})[self.modality]
            if self.sample_rate == 0:
                self.sample_rate = int(recipe["sample_rate"])
        if self.sample_rate == 0:
            rates = info.sample_rates or {}
            if self.modality not in rates:
                raise ValueError(
                    f"scenario background_noise: the data does not declare the sample rate of "
                    f"{self.modality!r}; set scenario.background_noise.sample_rate."
                )
            self.sample_rate = int(rates[self.modality])

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw the corrupted rows and a non-silent noise crop for each."""
        check_modalities([self.modality], dataset, "scenario background_noise")
        if self.sample_rate <= 0:
            raise ValueError(
                "scenario background_noise.sample_rate is not set (bind it to the data's info "
                "or set it explicitly)."
            )
        folder = resolve_data_dir(self.data_dir) / self.clips
        if not folder.is_dir():
            raise ValueError(
                f"scenario background_noise needs its noise clips in {folder}, which does not "
                f"exist. The data directory is scenario.background_noise.data_dir=PATH, else the "
                f"environment variable {DATA_ENV}, else {DEFAULT_DATA_DIR}: point one of them at "
                f"the folder holding {self.clips}."
            )
        bank = load_noise_bank(str(folder), self.sample_rate)
        x = self._waveforms_of(dataset)
        length = x.shape[-1]
        if bank.shape[1] < length:
            raise ValueError(
                f"The noise clips ({bank.shape[1]} samples) are shorter than the audio "
                f"({length} samples)."
            )
        n = len(dataset)
        threshold = 1e-3 * float(signal_power(bank).median())
        clip = torch.randint(bank.shape[0], (n,), generator=self.generator)
        start = torch.randint(bank.shape[1] - length + 1, (n,), generator=self.generator)
        steps = torch.arange(length).view(1, -1)
        for _ in range(50):
            crops = bank[clip.view(-1, 1), start.view(-1, 1) + steps]
            silent = signal_power(crops) < threshold
            if not silent.any():
                break
            k = int(silent.sum())
            clip[silent] = torch.randint(bank.shape[0], (k,), generator=self.generator)
            start[silent] = torch.randint(
                bank.shape[1] - length + 1, (k,), generator=self.generator
            )
        else:
            raise ValueError(f"Could not draw non-silent noise crops from {folder}.")
        rows = _rows_mask(n, self.fraction, self.generator) & dataset.present[self.modality]
        self._draw = (rows, crops)

    def _waveforms_of(self, dataset: MultimodalTensorDataset) -> Tensor:
        """The modality's waveforms: its inputs, or the dataset's waveforms of its features."""
        x = dataset.inputs[self.modality]
        if getattr(self, "_recipe", None) is None:
            if x.dim() == 4:
                raise ValueError(
                    f"scenario background_noise mixes noise into a waveform, but modality "
                    f"{self.modality!r} has shape {tuple(x.shape)} (a spectrogram) and the data "
                    "keeps no waveforms; with data=avmnist set data.keep_waveforms=true."
                )
            return x
        key = f"{self.modality}_recording"
        if key not in dataset.extras or self._waveforms is None:
            raise ValueError(
                f"scenario background_noise: the data declares features for {self.modality!r} "
                f"but its samples carry no extras[{key!r}] pointing at their waveforms."
            )
        return self._waveforms[dataset.extras[key]]

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Mix the drawn crops in at the configured SNR."""
        x = _as_float(dataset.inputs[self.modality], self.modality, "background_noise")
        if math.isinf(self.snr_db) and self.snr_db > 0:
            return dataset.replace(inputs={**dataset.inputs, self.modality: x})
        rows, crops = self._draw
        recipe = getattr(self, "_recipe", None)
        if recipe is not None:
            wave = self._waveforms_of(dataset)[rows]
            mixed_wave = wave + _scale_to_snr(wave, crops[rows].to(wave.dtype), self.snr_db)
            features = x.clone()
            features[rows] = waveform_features(mixed_wave, recipe).to(x.dtype)
            return dataset.replace(inputs={**dataset.inputs, self.modality: features})
        if (x.dim() == 3 and x.shape[1] != 1) or x.dim() not in (2, 3):
            raise ValueError(
                f"scenario background_noise needs mono audio [N, 1, T] or [N, T]; modality "
                f"{self.modality!r} has shape {tuple(x.shape)}."
            )
        noise = crops.view(x.shape).to(x.dtype)
        scaled = _scale_to_snr(x, noise, self.snr_db)
        mixed = x + scaled * _broadcast(rows, x).to(x.dtype)
        return dataset.replace(inputs={**dataset.inputs, self.modality: mixed})


_WORD_MODES = ("drop", "replace", "mask")


@SCENARIOS.register("word_dropout")
@dataclass
class WordDropout(Scenario):
    """Word dropout / replacement / masking in token sequences.

    Each word token (any id not in ``special_ids``) is hit with probability ``rate``:
    ``drop`` removes it (the rest shift left, the end is padded), ``replace`` puts a word
    drawn uniformly from the non-special vocabulary (Iyyer et al., ACL 2015; Wei & Zou, "EDA",
    EMNLP 2019), ``mask`` puts ``mask_id``. Vocabulary size and special ids default to the
    dataset's info.

    Attributes:
        rate: Probability that a word is hit (the severity).
        modality: The token modality ``[N, L]``.
        mode: ``drop``, ``replace`` or ``mask``.
        special_ids: Ids that are never hit (padding, CLS, SEP, MASK); the first is padding.
        vocab_size: Vocabulary size (``replace``).
        mask_id: The mask token (``mask``).

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> tokens = torch.tensor([[1, 5, 6, 7, 2, 0]])
        >>> ds = MultimodalTensorDataset({"text": tokens}, torch.zeros(1).long())
        >>> wd = WordDropout(rate=1.0, mode="drop", special_ids=[0, 1, 2, 3], vocab_size=8)
        >>> wd(ds).inputs["text"].tolist()
        [[1, 2, 0, 0, 0, 0]]
    """

    severity_param = "rate"
    harder = "higher"
    rate: float = 0.0
    modality: str = "text"
    mode: str = "replace"
    special_ids: list[int] = field(default_factory=list)
    vocab_size: int = 0
    mask_id: int = -1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_fraction(self.rate, "scenario word_dropout.rate")
        if self.mode not in _WORD_MODES:
            raise ValueError(
                f"scenario word_dropout.mode={self.mode!r} is unknown; valid: {list(_WORD_MODES)}."
            )

    def bind(self, info: DataInfo) -> None:
        """Take special ids, vocabulary size and mask id from the dataset's ``info``."""
        if not self.special_ids and info.special_ids is not None:
            self.special_ids = [int(i) for i in info.special_ids]
        if self.vocab_size == 0 and info.vocab_size is not None:
            self.vocab_size = info.vocab_size
        if self.mask_id < 0 and info.mask_id is not None:
            self.mask_id = info.mask_id

    def randomize(self, dataset: MultimodalTensorDataset) -> None:
        """Draw which tokens are hit and their replacements."""
        check_modalities([self.modality], dataset, "scenario word_dropout")
        tokens = dataset.inputs[self.modality]
        if tokens.is_floating_point() or tokens.dim() != 2:
            raise ValueError(
                f"scenario word_dropout needs token ids [N, L]; modality {self.modality!r} has "
                f"dtype {tokens.dtype} and shape {tuple(tokens.shape)}."
            )
        if not self.special_ids:
            raise ValueError(
                "scenario word_dropout.special_ids is empty and the data declares none; set it "
                "(the first id is the padding)."
            )
        if self.mode == "replace" and self.vocab_size <= len(self.special_ids):
            raise ValueError("scenario word_dropout.vocab_size must be set for mode=replace.")
        if self.mode == "mask" and self.mask_id < 0:
            raise ValueError("scenario word_dropout.mask_id must be set for mode=mask.")
        special = torch.tensor(self.special_ids)
        is_word = ~torch.isin(tokens, special)
        hit = (torch.rand(tokens.shape, generator=self.generator) < self.rate) & is_word
        hit &= dataset.present[self.modality].view(-1, 1)
        words = torch.tensor(
            [i for i in range(max(self.vocab_size, 1)) if i not in set(self.special_ids)]
        )
        pick = torch.randint(max(words.numel(), 1), tokens.shape, generator=self.generator)
        self._draw = (hit, words[pick] if words.numel() else pick)

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Drop, replace or mask the drawn tokens."""
        tokens = dataset.inputs[self.modality]
        hit, replacement = self._draw
        if self.mode == "replace":
            out = torch.where(hit, replacement.to(tokens.dtype), tokens)
        elif self.mode == "mask":
            out = tokens.masked_fill(hit, self.mask_id)
        else:
            order = torch.argsort(hit.int(), dim=1, stable=True)
            kept = tokens.gather(1, order)
            n_kept = (~hit).sum(dim=1, keepdim=True)
            positions = torch.arange(tokens.shape[1]).view(1, -1)
            out = kept.masked_fill(positions >= n_kept, self.special_ids[0])
        return dataset.replace(inputs={**dataset.inputs, self.modality: out})
