import pytest
import torch

from modalab.data import MultimodalBatch, MultimodalTensorDataset, collate_samples, make_loader


def _dataset(n: int = 10) -> MultimodalTensorDataset:
    return MultimodalTensorDataset(
        {
            "a": torch.arange(n, dtype=torch.float32).view(n, 1),
            "b": torch.arange(n).view(n, 1) * 10,
        },
        label=torch.arange(n) % 3,
        present={"b": torch.arange(n) % 2 == 0},
    )


def test_batch_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError, match="batch size 3 but the label has 2"):
        MultimodalBatch.from_inputs(
            {"a": torch.zeros(3, 2)}, label=torch.zeros(2, dtype=torch.long)
        )


def test_batch_rejects_present_of_other_modalities() -> None:
    with pytest.raises(ValueError, match="exactly the modalities"):
        MultimodalBatch(
            inputs={"a": torch.zeros(2)},
            present={"b": torch.ones(2, dtype=torch.bool)},
            label=torch.zeros(2, dtype=torch.long),
            label_observed=torch.ones(2, dtype=torch.bool),
            clean_label=torch.zeros(2, dtype=torch.long),
            index=torch.arange(2),
        )


def test_select_and_with_modalities() -> None:
    batch = _dataset().full_batch()
    sub = batch.select(torch.tensor([1, 4]))
    assert sub.index.tolist() == [1, 4]
    assert sub.inputs["b"].flatten().tolist() == [10, 40]
    assert sub.present["b"].tolist() == [False, True]
    only_a = batch.with_modalities(["a"])
    assert only_a.modalities == ("a",)
    with pytest.raises(KeyError, match="Unknown modalities"):
        batch.with_modalities(["c"])


def test_loader_batches_by_indexing_and_covers_dataset_once() -> None:
    ds = _dataset(10)
    loader = make_loader(ds, batch_size=4, shuffle=True, seed=3)
    batches = list(loader)
    assert [b.batch_size for b in batches] == [4, 4, 2]
    seen = torch.cat([b.index for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    for b in batches:  # rows stay aligned across modalities and labels
        assert torch.equal(b.inputs["a"].flatten().long(), b.index)
        assert torch.equal(b.label, b.index % 3)
        assert torch.equal(b.present["b"], b.index % 2 == 0)
    # Same seed, same order.
    again = torch.cat([b.index for b in make_loader(ds, batch_size=4, shuffle=True, seed=3)])
    assert torch.equal(seen, again)


def test_getitems_is_called_once_per_batch() -> None:
    ds = _dataset(8)
    calls = []
    original = ds.__getitems__

    def spy(indices):  # type: ignore[no-untyped-def]
        calls.append(len(indices))
        return original(indices)

    ds.__getitems__ = spy  # type: ignore[method-assign]
    list(make_loader(ds, batch_size=4))
    assert calls == [4, 4]


def test_dataset_rejects_labels_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"Labels must lie in \[0, 2\)"):
        MultimodalTensorDataset(
            {"a": torch.zeros(3, 1)}, label=torch.tensor([0, 1, 2]), num_classes=2
        )


def test_collate_fills_absent_modalities() -> None:
    samples = [
        {"inputs": {"img": torch.ones(2, 2), "txt": torch.tensor([5, 6])}, "label": 1, "index": 7},
        {"inputs": {"img": None, "txt": torch.tensor([8, 9])}, "label": 0, "index": 8},
    ]
    batch = collate_samples(samples, ["img", "txt"])
    assert batch.present["img"].tolist() == [True, False]
    assert torch.equal(batch.inputs["img"][1], torch.zeros(2, 2))
    assert batch.index.tolist() == [7, 8]
    with pytest.raises(ValueError, match="No sample of this batch has modality 'aud'"):
        collate_samples(samples, ["aud"])
