"""Streaming large datasets from memory-mapped ``.npy`` files with worker processes.

Datasets too large for memory are written once, one ``.npy`` file per tensor, and read
back through ``numpy.load(mmap_mode="r")``: a batch reads only its rows (sorted for locality)
and the operating system's page cache does the rest. :class:`MemmapMultimodalDataset` has the
same ``__getitems__`` contract as :class:`~modalab.data.MultimodalTensorDataset`, so every
loader, method and evaluator works unchanged; with ``num_workers > 0`` each worker opens its
own maps.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import EpochShuffleSampler, MultimodalTensorDataset

__all__ = ["MemmapMultimodalDataset", "make_stream_loader", "save_memmap"]

_FIELDS = ("label", "label_observed", "clean_label", "index")


def save_memmap(
    dataset: MultimodalTensorDataset, directory: str | os.PathLike[str], chunk_rows: int = 4096
) -> Path:
    """Write a dataset as memory-mappable ``.npy`` files, atomically (temp dir, then rename).

    Args:
        dataset: The dataset (it can also be filled chunk by chunk by a user's own writer
            following the same layout: ``<modality>.npy``, ``present.<modality>.npy``,
            ``label.npy``, ``label_observed.npy``, ``clean_label.npy``, ``index.npy``,
            ``meta.json``).
        directory: Target directory; must not exist yet.
        chunk_rows: Rows copied per chunk (bounds the extra memory of the copy).

    Returns:
        The directory.
    """
    target = Path(directory)
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it or choose another directory.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        n = len(dataset)
        for name, tensor in dataset.inputs.items():
            out = np.lib.format.open_memmap(
                tmp / f"{name}.npy",
                mode="w+",
                dtype=tensor.numpy().dtype,
                shape=tuple(tensor.shape),
            )
            for start in range(0, n, chunk_rows):
                out[start : start + chunk_rows] = tensor[start : start + chunk_rows].numpy()
            out.flush()
            del out
            np.save(tmp / f"present.{name}.npy", dataset.present[name].numpy())
        for field in _FIELDS:
            np.save(tmp / f"{field}.npy", getattr(dataset, field).numpy())
        meta = {"modalities": list(dataset.inputs), "num_classes": dataset.num_classes, "n": n}
        (tmp / "meta.json").write_text(json.dumps(meta))
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


class MemmapMultimodalDataset(Dataset[MultimodalBatch]):
    """A dataset read lazily from the files written by :func:`save_memmap`.

    Args:
        directory: The directory.

    Example:
        >>> import tempfile, pathlib
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset({"a": torch.arange(6.0).view(6, 1)},
        ...                              label=torch.tensor([0, 1, 0, 1, 0, 1]))
        >>> path = save_memmap(ds, pathlib.Path(tempfile.mkdtemp()) / "ds")
        >>> MemmapMultimodalDataset(path).__getitems__([4, 1]).inputs["a"].flatten().tolist()
        [4.0, 1.0]
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path} is missing: {self.directory} was not written by save_memmap "
                "(or the write did not finish)."
            )
        meta = json.loads(meta_path.read_text())
        self.modalities: tuple[str, ...] = tuple(meta["modalities"])
        self.num_classes = int(meta["num_classes"])
        self._n = int(meta["n"])
        self._maps: dict[str, Any] | None = None

    def _open(self) -> dict[str, Any]:
        if self._maps is None:  # opened lazily, so that each worker process has its own maps
            maps: dict[str, Any] = {}
            for name in self.modalities:
                maps[name] = np.load(self.directory / f"{name}.npy", mmap_mode="r")
                maps[f"present.{name}"] = np.load(self.directory / f"present.{name}.npy")
            for field in _FIELDS:
                maps[field] = np.load(self.directory / f"{field}.npy")
            self._maps = maps
        return self._maps

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> MultimodalBatch:
        return self.__getitems__([i])

    def __getitems__(self, indices: Sequence[int] | Tensor) -> MultimodalBatch:
        """Read the rows of ``indices`` (sorted for locality, returned in the given order)."""
        maps = self._open()
        rows = np.asarray(indices, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))

        def take(array: Any) -> Tensor:
            return torch.from_numpy(np.ascontiguousarray(array[sorted_rows][inverse]))

        return MultimodalBatch(
            inputs={m: take(maps[m]) for m in self.modalities},
            present={m: take(maps[f"present.{m}"]) for m in self.modalities},
            label=take(maps["label"]),
            label_observed=take(maps["label_observed"]),
            clean_label=take(maps["clean_label"]),
            index=take(maps["index"]),
        )


def _identity(batch: Any) -> Any:
    return batch


def make_stream_loader(
    dataset: MemmapMultimodalDataset,
    batch_size: int,
    shuffle: bool = False,
    num_workers: int = 2,
    seed: int = 0,
    drop_last: bool = False,
) -> DataLoader[MultimodalBatch]:
    """A loader that reads batches in ``num_workers`` processes, prefetching ahead of training."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=EpochShuffleSampler(len(dataset), seed) if shuffle else None,
        drop_last=drop_last,
        collate_fn=_identity,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
