"""``pneumoniamnist`` (and any MedMNIST ``.npz``): medical images through MONAI transforms.

MedMNIST v2 (Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D
biomedical image classification", Scientific Data 2023) ships each dataset as one ``.npz`` with
``{train,val,test}_images`` (``[N, H, W]`` uint8) and ``{train,val,test}_labels`` (``[N, 1]``).
PneumoniaMNIST holds chest X-rays (Kermany et al., Cell 2018) labelled normal / pneumonia.

The images pass through MONAI array transforms (intensity scaling to [0, 1], optional resize).
The dataset has one imaging modality, so a **second modality is derived** from the same image,
so that multimodal studies (missing modality, cross-modal transfer) can run on it. It is not an
independent measurement; the choice is configuration:

* ``spectrum``: the log-magnitude of the centred 2-D Fourier transform, ``[1, S, S]`` (a
  frequency-domain view: it keeps texture and scale, loses the phase, i.e. where things are);
* ``radiomics``: a vector of 16 handcrafted first-order and gradient features (intensity mean,
  standard deviation, skewness, kurtosis, 10/25/50/75/90th percentiles, histogram entropy,
  energy, range, and mean/std/90th percentile of the Sobel gradient magnitude plus the fraction
  of dark pixels), standardised with the training split's statistics;
* ``none``: the image alone.
"""

from __future__ import annotations

import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataError,
    DataFile,
    DataSource,
    RemoteFile,
    file_md5,
    require_paths,
    resolve_data_dir,
)
from modalab.data.integrity import stratified_subset
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = [
    "DERIVED_MODALITIES",
    "MedMNISTConfig",
    "fourier_view",
    "load_medmnist_npz",
    "make_pneumoniamnist",
    "radiomics_features",
]

DERIVED_MODALITIES = ("spectrum", "radiomics", "none")
_SPLITS = ("train", "val", "test")
PNEUMONIAMNIST_MD5 = "28209eda62fecd6e6a2d98b1501bb15f"
RADIOMICS_NAMES = (
    "mean",
    "std",
    "skewness",
    "kurtosis",
    "p10",
    "p25",
    "p50",
    "p75",
    "p90",
    "entropy",
    "energy",
    "range",
    "grad_mean",
    "grad_std",
    "grad_p90",
    "dark_fraction",
)


def load_medmnist_npz(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read a MedMNIST ``.npz``: split → (images ``[N, H, W]`` uint8, labels ``[N]`` int64).

    Raises:
        CorruptDataError: Not a readable ``.npz``, missing keys, or inconsistent shapes.
    """
    try:
        with np.load(path) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CorruptDataError(
            f"{path}: not a readable .npz file, truncated or damaged ({type(error).__name__}: "
            f"{error}). Re-download it with `modalab data download pneumoniamnist`."
        ) from None
    expected = [f"{s}_{k}" for s in _SPLITS for k in ("images", "labels")]
    missing = [k for k in expected if k not in arrays]
    if missing:
        raise CorruptDataError(
            f"{path}: missing arrays {missing}; a MedMNIST .npz has {expected} "
            f"(found {sorted(arrays)})."
        )
    out = {}
    for split in _SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise CorruptDataError(
                f"{path}: {split}_images is {images.dtype} {images.shape}; expected uint8 "
                "[N, H, W] (2-D grayscale MedMNIST)."
            )
        labels = labels.reshape(labels.shape[0], -1)
        if labels.shape != (images.shape[0], 1):
            raise CorruptDataError(
                f"{path}: {split}_labels has shape {labels.shape}, expected ({images.shape[0]}, 1)"
                " (single-label MedMNIST datasets only)."
            )
        if labels.size and int(labels.min()) < 0:
            raise CorruptDataError(
                f"{path}: {split}_labels holds the negative label {int(labels.min())}; class "
                "labels must be 0, 1, ..."
            )
        out[split] = (images, labels[:, 0].astype(np.int64))
    sizes = {split: tuple(out[split][0].shape[1:]) for split in _SPLITS}
    if len(set(sizes.values())) > 1:
        raise CorruptDataError(
            f"{path}: the splits hold images of different sizes {sizes}; one MedMNIST .npz "
            "has a single image size."
        )
    return out


def fourier_view(images: Tensor) -> Tensor:
    """Log-magnitude of the centred 2-D Fourier transform, standardised per image.

    Args:
        images: ``[N, 1, H, W]``.

    Returns:
        ``[N, 1, H, W]``.

    Example:
        >>> fourier_view(torch.rand(2, 1, 8, 8)).shape
        torch.Size([2, 1, 8, 8])
    """
    spectrum = torch.fft.fftshift(torch.fft.fft2(images), dim=(-2, -1)).abs()
    logmag = torch.log1p(spectrum)
    mean = logmag.mean(dim=(-2, -1), keepdim=True)
    std = logmag.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
    return (logmag - mean) / std


def radiomics_features(images: Tensor, bins: int = 32) -> Tensor:
    """Handcrafted first-order and gradient features of each image (see the module docstring).

    Args:
        images: ``[N, 1, H, W]`` with values in [0, 1].
        bins: Histogram bins for the entropy.

    Returns:
        ``[N, 16]`` features in the order of ``RADIOMICS_NAMES``.

    Example:
        >>> feats = radiomics_features(torch.full((1, 1, 4, 4), 0.5))
        >>> feats[0, 0].item(), feats[0, 1].item()
        (0.5, 0.0)
    """
    import kornia

    x = images.flatten(1).double()
    mean = x.mean(1)
    centred = x - mean.unsqueeze(1)
    var = centred.pow(2).mean(1)
    std = var.sqrt()
    safe = std.clamp_min(1e-12)
    skew = centred.pow(3).mean(1) / safe.pow(3)
    kurt = centred.pow(4).mean(1) / safe.pow(4) - 3.0
    skew = torch.where(std > 1e-12, skew, torch.zeros_like(skew))
    kurt = torch.where(std > 1e-12, kurt, torch.zeros_like(kurt))
    quantiles = torch.quantile(x, torch.tensor([0.1, 0.25, 0.5, 0.75, 0.9], dtype=x.dtype), dim=1).T
    index = (x.clamp(0, 1) * (bins - 1)).round().long()
    hist = torch.zeros(x.shape[0], bins, dtype=x.dtype).scatter_add_(1, index, torch.ones_like(x))
    p = hist / x.shape[1]
    entropy = -(p * torch.log2(p.clamp_min(1e-12))).sum(1)
    energy = x.pow(2).mean(1)
    value_range = x.max(1).values - x.min(1).values
    grad = kornia.filters.sobel(images.float()).flatten(1).double()
    grad_q = torch.quantile(grad, 0.9, dim=1)
    dark = (x < 0.2).double().mean(1)
    columns = [
        mean,
        std,
        skew,
        kurt,
        *quantiles.T,
        entropy,
        energy,
        value_range,
        grad.mean(1),
        grad.std(1),
        grad_q,
        dark,
    ]
    return torch.stack(columns, dim=1).float()


@dataclass
class MedMNISTConfig:
    """Configuration of ``data=pneumoniamnist``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory (empty: ``$MODALAB_DATA``, else ``~/.modalab/data``).
        file: The ``.npz`` relative to the data directory.
        derived: The derived second modality: ``spectrum``, ``radiomics`` or ``none``.
        image_size: Side after MONAI ``Resize`` (28: unchanged).
        max_per_split: Keep at most this many samples per split: a label-stratified random
            subset drawn with ``seed`` (0: all).
        seed: Seed of that subset.
    """

    name: str = "pneumoniamnist"
    data_dir: str = ""
    file: str = "medmnist/pneumoniamnist.npz"
    derived: str = "spectrum"
    image_size: int = 28
    max_per_split: int = 0
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        if self.derived not in DERIVED_MODALITIES:
            raise ValueError(
                f"data.derived={self.derived!r} is unknown; valid: {list(DERIVED_MODALITIES)}."
            )
        if self.image_size < 8:
            raise ValueError(f"data.image_size must be at least 8, got {self.image_size}.")
        if self.max_per_split < 0:
            raise ValueError(f"data.max_per_split must be >= 0, got {self.max_per_split}.")


@DATASETS.register("pneumoniamnist", config=MedMNISTConfig, sources=("pneumoniamnist",))
def make_pneumoniamnist(**kwargs: Any) -> Splits:
    """PneumoniaMNIST chest X-rays (MedMNIST ``.npz``) with a derived second modality.

    Args:
        **kwargs: Fields of :class:`MedMNISTConfig` (``name`` excluded).

    Returns:
        Splits with ``image`` ``[N, 1, S, S]`` in [0, 1] and, unless ``derived="none"``, the
        derived modality (``spectrum`` ``[N, 1, S, S]`` or ``radiomics`` ``[N, 16]``), using
        the file's own train/val/test splits; ``info`` says whether the file is the official
        MedMNIST release (by MD5), the split sizes and label counts, and that the second
        modality is derived.

    Raises:
        MissingDataError: The ``.npz`` is not in the data directory.
        CorruptDataError: It is unreadable or not in the MedMNIST format.
    """
    from monai.transforms import Compose, Resize, ScaleIntensityRange
    from monai.utils import convert_to_tensor

    config = MedMNISTConfig(**kwargs)
    config.validate()
    start = time.perf_counter()
    data_dir = resolve_data_dir(config.data_dir)
    source = SOURCES.get("pneumoniamnist")
    (path,) = require_paths(source, data_dir, [data_dir / config.file])
    arrays = load_medmnist_npz(path)
    md5 = file_md5(path, decompress=False)
    transform = Compose([ScaleIntensityRange(a_min=0.0, a_max=255.0, b_min=0.0, b_max=1.0)])
    if config.image_size != arrays["train"][0].shape[1]:
        transform = Compose([transform, Resize((config.image_size, config.image_size))])
    class_names = ["normal", "pneumonia"]
    num_classes = len(class_names)
    for split, (_, y) in arrays.items():
        bad = (y < 0) | (y >= num_classes)
        if bad.any():
            raise DataError(
                f"{path}: {int(bad.sum())} {split} label(s) {sorted(set(y[bad].tolist()))[:10]} "
                f"are outside the declared classes 0..{num_classes - 1} {class_names}. The file "
                "is not PneumoniaMNIST; re-download it with `modalab data download "
                "pneumoniamnist` (checked against its published MD5)."
            )
    rng = np.random.default_rng(config.seed)
    images: dict[str, Tensor] = {}
    labels: dict[str, Tensor] = {}
    for split, (x, y) in arrays.items():
        if config.max_per_split:  # stratified and random: the file may be sorted by class
            rows = stratified_subset(y, config.max_per_split, rng)
            x, y = x[rows], y[rows]
        # MONAI array transforms are channel-first: the N images act as N channels here.
        out = convert_to_tensor(transform(x.astype(np.float32)), torch.float32, track_meta=False)
        images[split] = out.unsqueeze(1).contiguous()
        labels[split] = torch.from_numpy(y)
    derived: dict[str, Tensor] = {}
    if config.derived == "spectrum":
        derived = {s: fourier_view(x) for s, x in images.items()}
    elif config.derived == "radiomics":
        raw = {s: radiomics_features(x) for s, x in images.items()}
        mean, std = raw["train"].mean(0), raw["train"].std(0).clamp_min(1e-6)
        derived = {s: (f - mean) / std for s, f in raw.items()}
    datasets = {}
    for split in _SPLITS:
        inputs = {"image": images[split]}
        if derived:
            inputs[config.derived] = derived[split]
        datasets[split] = MultimodalTensorDataset(inputs, labels[split], num_classes=num_classes)
    info = DataInfo(
        name="pneumoniamnist",
        sizes={s: len(d) for s, d in datasets.items()},
        label_counts={
            s: torch.bincount(labels[s], minlength=num_classes).tolist() for s in _SPLITS
        },
        class_names=class_names,
        build_seconds=time.perf_counter() - start,
        extra={
            "file": str(path),
            "md5": md5,
            "official_file": md5 == PNEUMONIAMNIST_MD5,
            "derived_modality": config.derived,
            "derived_note": "the second modality is computed from the image, not measured",
        },
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], num_classes, info)


def _check_npz(path: Path) -> None:
    load_medmnist_npz(path)


SOURCES.register("pneumoniamnist", "PneumoniaMNIST (MedMNIST v2), 28x28 chest X-rays")(
    DataSource(
        name="pneumoniamnist",
        folder="medmnist",
        description="PneumoniaMNIST (MedMNIST v2) .npz",
        files=(DataFile("pneumoniamnist.npz", content_md5=PNEUMONIAMNIST_MD5),),
        remotes=(
            RemoteFile(
                ("https://zenodo.org/records/10519652/files/pneumoniamnist.npz?download=1",),
                "pneumoniamnist.npz",
                PNEUMONIAMNIST_MD5,
            ),
        ),
        citation="J. Yang et al., MedMNIST v2, Scientific Data 2023; D. Kermany et al., Cell 2018",
        licence="CC BY 4.0",
        check=_check_npz,
    )
)
