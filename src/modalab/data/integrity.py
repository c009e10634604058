"""Integrity checks of built data: duplicates, leakage between splits, labels, split sizes.

Wrong numbers come more often from the data than from the model: a test image that is also a
training image, a class-sorted file cut after its first rows, a label outside the declared
classes, a test split of two samples. These checks run on every built dataset (the runner
calls :func:`check_splits`) and on files before they become samples
(:func:`duplicate_files`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from modalab.data.files import DataError
from modalab.data.tensor_dataset import MultimodalTensorDataset, Splits

__all__ = [
    "MIN_TEST_SIZE",
    "MIN_TRAIN_SIZE",
    "check_labels",
    "check_split_sizes",
    "duplicate_files",
    "remove_split_leakage",
    "sample_digests",
    "split_overlaps",
    "stratified_subset",
]

#: A test split smaller than this cannot be scored (one sample is 10 % of accuracy).
MIN_TEST_SIZE = 10
#: A training split smaller than this cannot fit a probe.
MIN_TRAIN_SIZE = 10


def stratified_subset(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices of a label-stratified random subset of ``size`` rows (sorted).

    Each class keeps its share of the rows (largest-remainder rounding, at least one row of
    every class present when ``size`` allows); rows within a class are drawn at random, so a
    class-sorted file is not cut after its first class.

    Args:
        labels: ``[N]`` integer labels.
        size: Rows wanted; ``>= N`` keeps every row.
        rng: The random generator (seeded by the caller).

    Example:
        >>> y = np.array([0] * 90 + [1] * 10)
        >>> rows = stratified_subset(y, 20, np.random.default_rng(0))
        >>> len(rows), int((y[rows] == 1).sum())
        (20, 2)
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.shape[0]
    if size >= n:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / n
    take = np.floor(exact).astype(int)
    if size >= len(classes):
        take = np.maximum(take, 1)
    while take.sum() > size:  # the minimum of one per class overshot: trim the largest
        take[np.argmax(take)] -= 1
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    for i in order:
        if take.sum() >= size:
            break
        if take[i] < counts[i]:
            take[i] += 1
    rows = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, take)
        if k > 0
    ]
    return np.sort(np.concatenate(rows))


def duplicate_files(paths: Sequence[Path]) -> list[tuple[int, int, str]]:
    """Pairs ``(first, later, reason)`` of entries naming the same file or the same bytes.

    Paths are compared after normalisation (``./imgs/x.jpg`` = ``imgs/x.jpg``, symbolic links
    resolved), then contents by SHA-256 (an image copied under a second name). Missing files
    are left to the reader's own error.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / "a.png").write_bytes(b"x"); _ = (root / "b.png").write_bytes(b"x")
        >>> [(i, j) for i, j, _ in duplicate_files([root / "a.png", root / "./a.png",
        ...                                          root / "b.png"])]
        [(0, 1), (0, 2)]
    """
    seen_path: dict[str, int] = {}
    seen_hash: dict[str, int] = {}
    pairs: list[tuple[int, int, str]] = []
    for i, path in enumerate(paths):
        key = os.path.normcase(os.path.realpath(path))
        if key in seen_path:
            pairs.append((seen_path[key], i, f"{path} is the same file as entry {seen_path[key]}"))
            continue
        seen_path[key] = i
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            continue
        if digest in seen_hash:
            first = paths[seen_hash[digest]]
            pairs.append((seen_hash[digest], i, f"{path} has the same bytes as {first}"))
        else:
            seen_hash[digest] = i
    return pairs


def _row_digests(values: torch.Tensor) -> list[bytes]:
    rows = values.detach().cpu().contiguous().reshape(values.shape[0], -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def _input_digests(dataset: MultimodalTensorDataset, name: str, chunk: int = 2048) -> list[bytes]:
    """One content digest of modality ``name`` per sample, ``chunk`` rows in memory at a time.

    An indexed dataset (samples gathered from a pool of unique inputs) is hashed per pool row it
    uses: the digest of a sample is that of its row's values as the sample sees them, without
    materialising every sample (AV-MNIST: 55,000 training samples over 8,500 spectrograms).
    """
    from modalab.data.indexed import IndexedMultimodalDataset

    if isinstance(dataset, IndexedMultimodalDataset):
        rows = dataset.rows[name]
        used = torch.unique(rows)
        by_row: dict[int, bytes] = {}
        for k in range(0, len(used), chunk):
            part = used[k : k + chunk]
            by_row.update(zip(part.tolist(), _row_digests(dataset.pool_values(name, part))))
        return [by_row[r] for r in rows.tolist()]
    values = dataset.inputs[name]
    out: list[bytes] = []
    for k in range(0, values.shape[0], chunk):
        out += _row_digests(values[k : k + chunk])
    return out


def sample_digests(dataset: MultimodalTensorDataset) -> list[str]:
    """A content digest per sample: the bytes of every present modality (labels excluded).

    Two samples get the same digest exactly when the same modalities are present and their
    float values are bytewise equal, whether the dataset holds its inputs or gathers them from
    pools (:class:`~modalab.data.indexed.IndexedMultimodalDataset`, hashed per pool row).

    Example:
        >>> ds = MultimodalTensorDataset({"a": torch.tensor([[1.0], [2.0], [1.0]])},
        ...                              torch.tensor([0, 1, 1]))
        >>> d = sample_digests(ds)
        >>> d[0] == d[2] != d[1]
        True
    """
    hashers = [hashlib.blake2b(digest_size=16) for _ in range(len(dataset))]
    for name in dataset.modalities:
        present = dataset.present[name].cpu().tolist()
        for hasher, keep, digest in zip(hashers, present, _input_digests(dataset, name)):
            if keep:
                hasher.update(name.encode() + b"\0" + digest)
    return [h.hexdigest() for h in hashers]


def split_overlaps(splits: Splits) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """Samples with identical content in two splits: ``(a, b) -> [(row in a, row in b), ...]``."""
    digests = {s: sample_digests(getattr(splits, s)) for s in ("train", "val", "test")}
    overlaps: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        first = {d: i for i, d in enumerate(digests[a])}
        pairs = [(first[d], j) for j, d in enumerate(digests[b]) if d in first]
        if pairs:
            overlaps[(a, b)] = pairs
    return overlaps


def remove_split_leakage(
    splits: Splits, on_error: str, where: str, can_skip: bool = True
) -> Splits:
    """Remove held-out copies of training samples; refuse test copies unless asked to skip.

    A sample whose content is in two splits is kept in the earlier split (train, then val).
    Copies in ``val`` (used only to choose probe regularisation) are always removed;
    copies in ``test`` (the reported split) are an error under ``on_error="raise"`` and
    removed under ``on_error="skip"``. Removals are recorded in ``info.leakage``.

    Args:
        splits: The built splits.
        on_error: ``raise`` or ``skip`` (``data.on_error``).
        where: The dataset, for messages.
        can_skip: Whether the dataset has a ``data.on_error`` key to suggest.

    Raises:
        DataError: Test samples equal to train or val samples, under ``on_error="raise"``.
    """
    overlaps = split_overlaps(splits)
    if not overlaps:
        return splits
    summary = ", ".join(f"{len(p)} in {a} and {b}" for (a, b), p in overlaps.items())
    in_test = [(pair, rows) for pair, rows in overlaps.items() if pair[1] == "test"]
    if in_test and on_error != "skip":
        (a, b), pairs = in_test[0]
        fix = "Remove the duplicates from the files" + (
            ", or set data.on_error=skip to drop the test copies (counted in the results)."
            if can_skip
            else "."
        )
        raise DataError(
            f"{where}: test samples identical to training samples ({summary}), e.g. "
            f"{a} row {pairs[0][0]} = {b} row {pairs[0][1]}; the test scores would be "
            f"inflated. {fix}"
        )
    drop: dict[str, set[int]] = {"val": set(), "test": set()}
    for (_, b), pairs in overlaps.items():
        drop[b].update(j for _, j in pairs)
    parts = {}
    for split in ("val", "test"):
        data = getattr(splits, split)
        keep = [i for i in range(len(data)) if i not in drop[split]]
        parts[split] = data.subset(torch.tensor(keep, dtype=torch.long))
    info = replace(
        splits.info,
        leakage={"removed": {s: len(r) for s, r in drop.items()}, "overlaps": summary},
    )
    return Splits(splits.train, parts["val"], parts["test"], splits.num_classes, info)


def check_labels(splits: Splits, where: str) -> None:
    """Every label in ``[0, num_classes)`` and as many class names as classes, if named.

    An empty ``class_names`` means the classes are unnamed (ids), as for a ``shapes`` label
    combined from several factors.

    Raises:
        DataError: Naming the split, the bad values and their count.
    """
    names = splits.info.class_names
    if names and len(names) != splits.num_classes:
        raise DataError(
            f"{where}: the data declares {len(names)} classes {list(names)} but its labels "
            f"imply {splits.num_classes}; labels must be 0..{len(names) - 1}. Check the file."
        )
    for split in ("train", "val", "test"):
        labels = getattr(splits, split).label
        bad = (labels < 0) | (labels >= splits.num_classes)
        if bool(bad.any()):
            values = sorted({int(v) for v in labels[bad].tolist()})
            raise DataError(
                f"{where}: {int(bad.sum())} {split} label(s) {values[:10]} are outside the "
                f"declared classes 0..{splits.num_classes - 1}. Check the file."
            )


def check_split_sizes(splits: Splits, where: str, hint: Iterable[str] = ()) -> None:
    """Refuse splits too small to train on or score.

    Raises:
        DataError: Naming each split's size and the minimum.
    """
    sizes = {s: len(getattr(splits, s)) for s in ("train", "val", "test")}
    small = []
    if sizes["test"] < MIN_TEST_SIZE:
        small.append(f"test has {sizes['test']} sample(s), fewer than {MIN_TEST_SIZE}")
    if sizes["train"] < MIN_TRAIN_SIZE:
        small.append(f"train has {sizes['train']} sample(s), fewer than {MIN_TRAIN_SIZE}")
    if sizes["val"] < 1:
        small.append("val is empty")
    if small:
        more = f" Use more data ({', '.join(hint)})." if hint else ""
        raise DataError(
            f"{where}: splits too small to score ({'; '.join(small)}; sizes {sizes})."
            f" A metric on so few samples means nothing.{more}"
        )
