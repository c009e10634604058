"""``noisymnist``: the two-view Noisy MNIST benchmark of deep multi-view representation learning.

Built as described by Wang, Arora, Livescu & Bilmes ("On deep multi-view representation
learning", ICML 2015) and restated in Wang, Yan, Lee & Livescu ("Deep variational canonical
correlation analysis", arXiv:1610.03454, section 4.1): pixel values are rescaled to [0, 1];

* view 1 (``rotated``): each image rotated by an angle drawn uniformly from [-π/4, π/4];
* view 2 (``noisy``): for each view-1 image, a *different* image of the same digit, with
  independent noise drawn uniformly from [0, 1] added to every pixel, then truncated to [0, 1];
* splits: the MNIST training set is split at random into 50,000 training and 10,000 tuning
  (here: validation) images; the MNIST test set (10,000) is the test split.

The digit identity is the only variable common to both views. The view-2 partner of a sample is
drawn from the same split as the sample (the papers draw it "from the original dataset"; drawing
within the split keeps test images out of training pairs). Rotation is bilinear about the image
centre with zero fill (:func:`rotate_images`). Both views are computed in float32 and then stored
as 8-bit images (multiples of 1/255, like a saved image file). All draws come from one ``numpy``
generator seeded by ``seed``; the build takes a few seconds and is cached as uint8 (110 MB, keyed
by the configuration and the SHA-256 of the MNIST files) so that a second build reads one file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.data.avmnist import read_idx
from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    atomic_save_bytes,
    require_files,
    resolve_data_dir,
)
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = [
    "NoisyMNISTConfig",
    "make_noisymnist",
    "noisy_partner_view",
    "pair_different_same_label",
    "rotate_images",
]

_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def rotate_images(images: Tensor, angles: Tensor) -> Tensor:
    """Rotate each image about its centre by its angle (radians, counter-clockwise), zero fill.

    Bilinear interpolation through :func:`torch.nn.functional.grid_sample`; the output has the
    input's size (corners that leave the frame are cut, empty regions are 0).

    Args:
        images: ``[N, H, W]`` or ``[N, 1, H, W]``.
        angles: ``[N]`` angles in radians.

    Returns:
        Rotated images, shaped like ``images``.

    Example:
        >>> x = torch.zeros(1, 5, 5); x[0, 2, 4] = 1.0    # a dot right of the centre
        >>> y = rotate_images(x, torch.tensor([math.pi / 2]))
        >>> (y[0] > 0.5).nonzero().tolist()               # now above it (row 0)
        [[0, 2]]
    """
    squeeze = images.dim() == 3
    x = images.unsqueeze(1) if squeeze else images
    cos, sin = torch.cos(angles).to(x.dtype), torch.sin(angles).to(x.dtype)
    zeros = torch.zeros_like(cos)
    # grid_sample maps output coordinates to input coordinates: the inverse rotation. With
    # y pointing down in image coordinates, a counter-clockwise turn on screen is this matrix.
    theta = torch.stack([torch.stack([cos, -sin, zeros], 1), torch.stack([sin, cos, zeros], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.squeeze(1) if squeeze else out


def pair_different_same_label(label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each row, a random *other* row with the same label.

    Args:
        label: ``[N]`` labels; every label must occur at least twice.
        rng: The generator of the draw.

    Returns:
        ``[N]`` partner indices ``j`` with ``j != i`` and ``label[j] == label[i]``.

    Raises:
        ValueError: If a label occurs once only.

    Example:
        >>> p = pair_different_same_label(np.array([0, 0, 1, 1, 1]), np.random.default_rng(0))
        >>> bool((p != np.arange(5)).all()), np.array([0, 0, 1, 1, 1])[p].tolist()
        (True, [0, 0, 1, 1, 1])
    """
    out = np.empty(label.shape[0], dtype=np.int64)
    for value in np.unique(label):
        rows = np.flatnonzero(label == value)
        if rows.size < 2:
            raise ValueError(f"Label {int(value)} occurs once; it has no different partner.")
        # An offset in 1..n-1 from each row's position: never the row itself, uniform otherwise.
        offset = rng.integers(1, rows.size, size=rows.size)
        out[rows] = rows[(np.arange(rows.size) + offset) % rows.size]
    return out


def noisy_partner_view(
    images: Tensor, partner: np.ndarray, rng: np.random.Generator, noise_max: float = 1.0
) -> Tensor:
    """View 2: the partner image plus uniform ``[0, noise_max]`` noise per pixel, clipped to [0, 1].

    Args:
        images: ``[N, H, W]`` in [0, 1].
        partner: ``[N]`` partner index of each sample.
        rng: The generator of the noise.
        noise_max: Upper end of the uniform noise (1.0 in Wang et al.).

    Returns:
        ``[N, H, W]`` float32 in [0, 1].
    """
    noise = rng.random(size=(partner.shape[0], *images.shape[1:]), dtype=np.float32) * noise_max
    return (images[torch.from_numpy(partner)] + torch.from_numpy(noise)).clamp_(0.0, 1.0)


@dataclass
class NoisyMNISTConfig:
    """Configuration of ``data=noisymnist``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory holding ``mnist/`` (the four official idx files).
        n_val: Images of the MNIST training set held out for validation (tuning); 10,000 in
            Wang et al.; the rest (50,000) is the training split.
        max_angle: Rotation angles are uniform in [-max_angle, max_angle] radians (π/4).
        noise_max: View-2 noise is uniform in [0, noise_max], then clipped to [0, 1] (1.0).
        flatten: Vectors ``[784]`` (the papers' MLP setting, ``mlp`` encoders) instead of
            images ``[1, 28, 28]`` (``cnn2d`` encoders).
        max_train: Keep a label-stratified subset of this many of the 50,000 training samples
            (0: all, the papers' protocol). The default, 10,000, keeps ``modalab run
            data=noisymnist`` within about a minute of CPU time; validation and test splits
            are always the full 10,000.
        seed: Seed of the split, the angles, the partners and the noise.
        cache_dir: Folder of the built-tensor cache (empty: ``$MODALAB_CACHE`` or
            ``~/.cache/modalab``).
        use_cache: Read/write the cache.
    """

    name: str = "noisymnist"
    data_dir: str = ""
    n_val: int = 10000
    max_angle: float = math.pi / 4
    noise_max: float = 1.0
    flatten: bool = True
    max_train: int = 10000
    seed: int = 0
    cache_dir: str = ""
    use_cache: bool = True

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        if not 100 <= self.n_val <= 30000:
            raise ValueError(f"data.n_val must be in [100, 30000], got {self.n_val}.")
        if not 0 <= self.max_angle <= math.pi:
            raise ValueError(f"data.max_angle must be in [0, π] radians, got {self.max_angle}.")
        if not 0 <= self.noise_max <= 1:
            raise ValueError(f"data.noise_max must be in [0, 1], got {self.noise_max}.")
        if self.max_train < 0 or 0 < self.max_train < 100:
            raise ValueError(f"data.max_train must be 0 (all) or >= 100, got {self.max_train}.")


def _cache_path(config: NoisyMNISTConfig, files: list[Path]) -> Path:
    root = config.cache_dir or os.environ.get("MODALAB_CACHE", "~/.cache/modalab")
    fields = {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in ("name", "data_dir", "cache_dir", "use_cache", "flatten")
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode() + hashlib.sha256(path.read_bytes()).digest())
    return Path(root).expanduser() / f"noisymnist-{digest.hexdigest()[:24]}.pt"


def _read_mnist(files: list[Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for split, (images_path, labels_path) in (
        ("train", (files[0], files[1])),
        ("test", (files[2], files[3])),
    ):
        x, y = read_idx(images_path, "images"), read_idx(labels_path, "labels")
        if x.shape[0] != y.shape[0] or x.shape[1:] != (28, 28):
            raise CorruptDataError(
                f"{images_path}: {x.shape} images for {y.shape[0]} labels; expected [N, 28, 28]."
            )
        if y.size and int(y.max()) > 9:
            raise CorruptDataError(f"{labels_path}: labels above 9; MNIST labels are 0-9.")
        out[split] = (x, y.astype(np.int64))
    return out


def _to_uint8(images: Tensor) -> Tensor:
    """Round [0, 1] images to 8 bits (as a saved image): the cache is 4x smaller."""
    return (images * 255.0).round_().clamp_(0, 255).to(torch.uint8)


def _build(config: NoisyMNISTConfig, files: list[Path]) -> dict[str, Any]:
    mnist = _read_mnist(files)
    rng = np.random.default_rng(config.seed)
    x_train, y_train = mnist["train"]
    if config.n_val >= x_train.shape[0]:
        raise ValueError(f"data.n_val={config.n_val} leaves no training images.")
    order = rng.permutation(x_train.shape[0])
    rows = {
        "train": np.sort(order[config.n_val :]),
        "val": np.sort(order[: config.n_val]),
        "test": np.arange(mnist["test"][0].shape[0]),
    }
    if config.max_train:
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            rows["train"],
            train_size=config.max_train,
            stratify=y_train[rows["train"]],
            random_state=config.seed,
        )
        rows["train"] = np.sort(keep)
    out: dict[str, Any] = {}
    for split, idx in rows.items():
        x, y = mnist["test"] if split == "test" else mnist["train"]
        images = torch.from_numpy(x[idx].astype(np.float32) / 255.0)
        label = y[idx]
        angles = rng.uniform(-config.max_angle, config.max_angle, size=idx.shape[0])
        partner = pair_different_same_label(label, rng)
        rotated = rotate_images(images, torch.from_numpy(angles).float())
        noisy = noisy_partner_view(images, partner, rng, config.noise_max)
        out[split] = {
            "rotated": _to_uint8(rotated),
            "noisy": _to_uint8(noisy),
            "label": torch.from_numpy(label),
            "angle": torch.from_numpy(angles),
            "partner": torch.from_numpy(partner),
            "mnist_index": torch.from_numpy(idx.astype(np.int64)),
        }
    return out


@DATASETS.register("noisymnist", config=NoisyMNISTConfig, sources=("mnist",))
def make_noisymnist(**kwargs: Any) -> Splits:
    """Noisy MNIST (Wang et al., ICML 2015): rotated digit vs. a noisy other image of its class.

    Args:
        **kwargs: Fields of :class:`NoisyMNISTConfig` (``name`` excluded).

    Returns:
        Splits (10,000 of the 50,000 training pairs by default, ``max_train=0``: all of
        them; 10,000 validation; 10,000 test) with modalities ``rotated`` and ``noisy``,
        ``[N, 784]`` (or ``[N, 1, 28, 28]`` with ``flatten=false``) in [0, 1]. ``info`` has
        per split the rotation angle of every sample (``angle``), its view-2 partner
        (``partner``, a row of the same split) and its MNIST row (``mnist_index``).

    Raises:
        MissingDataError: An MNIST idx file (training or test) is absent.
        CorruptDataError: An idx file is corrupt.
    """
    config = NoisyMNISTConfig(**kwargs)
    config.validate()
    start = time.perf_counter()
    data_dir = resolve_data_dir(config.data_dir)
    source = SOURCES.get("mnist")
    root = data_dir / source.folder
    names = [n if (root / n).is_file() or not (root / n[:-3]).is_file() else n[:-3] for n in _FILES]
    files = require_files(source, data_dir, names)
    built: dict[str, Any] | None = None
    cache = _cache_path(config, files) if config.use_cache else None
    if cache is not None and cache.is_file():
        try:
            built = torch.load(cache, weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
            warnings.warn(f"Ignoring the unreadable cache {cache} ({error}).", stacklevel=2)
    from_cache = built is not None
    if built is None:
        built = _build(config, files)
        if cache is not None:
            payload = built
            atomic_save_bytes(cache, lambda tmp: torch.save(payload, tmp))
    datasets = {}
    for split, part in built.items():
        shape = (-1, 784) if config.flatten else (-1, 1, 28, 28)
        datasets[split] = MultimodalTensorDataset(
            {
                view: part[view].reshape(shape).to(torch.float32).div_(255.0)
                for view in ("rotated", "noisy")
            },
            part["label"],
            num_classes=10,
        )
    info = DataInfo(
        name="noisymnist",
        sizes={s: len(d) for s, d in datasets.items()},
        class_names=[str(d) for d in range(10)],
        build_seconds=time.perf_counter() - start,
        extra={
            "angle": {s: p["angle"] for s, p in built.items()},
            "partner": {s: p["partner"] for s, p in built.items()},
            "mnist_index": {s: p["mnist_index"] for s, p in built.items()},
            "protocol": "Wang et al. ICML 2015: MNIST train → 50k train / 10k tuning, MNIST test",
            "cache_path": str(cache) if cache else "",
            "from_cache": from_cache,
        },
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], 10, info)
