"""Leakage between splits on datasets gathered from pools: same verdict, nothing materialised."""

from __future__ import annotations

import numpy as np
import torch

from modalab.data.indexed import IndexedMultimodalDataset
from modalab.data.integrity import sample_digests, split_overlaps
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits


def _brute_force_digests(inputs: dict[str, np.ndarray], present: dict[str, np.ndarray]) -> list:
    """Each sample's present modalities' float32 bytes, compared whole (no hashing tricks)."""
    n = len(next(iter(inputs.values())))
    return [
        tuple(
            (m, inputs[m][i].astype(np.float32).tobytes()) for m in sorted(inputs) if present[m][i]
        )
        for i in range(n)
    ]


def _indexed(seed: int, pools: dict[str, torch.Tensor], n: int) -> IndexedMultimodalDataset:
    g = torch.Generator().manual_seed(seed)
    rows = {m: torch.randint(0, len(p), (n,), generator=g) for m, p in pools.items()}
    label = torch.randint(0, 3, (n,), generator=g)
    return IndexedMultimodalDataset(pools, rows, label, divisor={"image": 255.0}, num_classes=3)


def test_digests_of_an_indexed_dataset_equal_those_of_its_materialised_copy():
    pools = {
        "image": torch.randint(0, 4, (6, 1, 3, 3), dtype=torch.uint8),  # repeats likely
        "audio": torch.randn(5, 1, 4, 4).half(),
    }
    data = _indexed(0, pools, 200)
    data.present["audio"][::7] = False
    got = sample_digests(data)
    assert data._materialised is None  # hashed per pool row, never per sample
    plain = MultimodalTensorDataset(
        {m: data.inputs[m].clone() for m in data.modalities},
        data.label,
        present={m: v.clone() for m, v in data.present.items()},
    )
    assert got == sample_digests(plain)
    # Equal digests exactly when the brute-force comparison of bytes says equal.
    truth = _brute_force_digests(
        {m: data.inputs[m].numpy() for m in data.modalities},
        {m: data.present[m].numpy() for m in data.modalities},
    )
    pairs = [(i, j) for i in range(0, 200, 3) for j in range(1, 200, 5)]
    assert any(truth[i] == truth[j] for i, j in pairs)
    for i, j in pairs:
        assert (got[i] == got[j]) == (truth[i] == truth[j]), (i, j)


def test_overlaps_are_found_across_different_pools_holding_the_same_content():
    train_pool = {"image": torch.arange(40, dtype=torch.uint8).reshape(10, 1, 2, 2)}
    # The test pool is another tensor: two of its rows copy training rows 3 and 7.
    test_pool = {"image": torch.cat([train_pool["image"][[3, 7]], train_pool["image"][:2] + 100])}
    train = IndexedMultimodalDataset(
        train_pool, {"image": torch.arange(10)}, torch.zeros(10, dtype=torch.long), num_classes=2
    )
    test = IndexedMultimodalDataset(
        test_pool,
        {"image": torch.tensor([2, 0, 3, 1])},
        torch.ones(4, dtype=torch.long),
        num_classes=2,
    )
    val = IndexedMultimodalDataset(
        {"image": torch.full((1, 1, 2, 2), 200, dtype=torch.uint8)},
        {"image": torch.tensor([0])},
        torch.ones(1, dtype=torch.long),
        num_classes=2,
    )
    splits = Splits(train, val, test, 2, DataInfo(name="toy"))
    overlaps = split_overlaps(splits)
    assert overlaps == {("train", "test"): [(3, 1), (7, 3)]}
    for data in (train, val, test):
        assert data._materialised is None
