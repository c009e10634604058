from pathlib import Path

import pytest
import torch

from modalab.data import make_loader, make_shapes
from modalab.data.memmap import MemmapMultimodalDataset, make_stream_loader, save_memmap


@pytest.fixture(scope="module")
def shapes_train():
    return make_shapes(n_samples=300, seed=2).train


def test_round_trip_batches_equal_in_memory_batches(shapes_train, tmp_path: Path) -> None:
    ds = shapes_train.replace(present={"image": torch.arange(len(shapes_train)) % 3 > 0})
    stream = MemmapMultimodalDataset(save_memmap(ds, tmp_path / "ds"))
    assert len(stream) == len(ds) and stream.modalities == ds.modalities
    rows = [17, 3, 150, 3, 0]
    a, b = ds.__getitems__(rows), stream.__getitems__(rows)
    for m in ds.modalities:
        assert torch.equal(a.inputs[m], b.inputs[m])
        assert torch.equal(a.present[m], b.present[m])
    for field in ("label", "label_observed", "clean_label", "index"):
        assert torch.equal(getattr(a, field), getattr(b, field))


def test_worker_loader_reads_every_sample_once_in_the_sampler_order(
    shapes_train, tmp_path: Path
) -> None:
    stream = MemmapMultimodalDataset(save_memmap(shapes_train, tmp_path / "ds"))
    loader = make_stream_loader(stream, batch_size=64, shuffle=True, num_workers=2, seed=5)
    streamed = torch.cat([b.index for b in loader])
    in_memory = torch.cat([b.index for b in make_loader(shapes_train, 64, shuffle=True, seed=5)])
    assert torch.equal(streamed, in_memory)


def test_incomplete_or_existing_directories_are_errors(shapes_train, tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(FileNotFoundError, match="was not written by save_memmap"):
        MemmapMultimodalDataset(tmp_path / "half")
    with pytest.raises(FileExistsError, match="already exists"):
        save_memmap(shapes_train, tmp_path / "half")
