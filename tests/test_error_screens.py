"""Fault injection at the command line: every bad input gives one screen and an exit status.

The taxonomy (modalab.experiments.errors): configuration error → 2, data error → 3,
environment error → 4. Each case runs ``modalab`` in-process and asserts the exit status,
that the message names the key or the file, that it fits one screen without a traceback, and
that nothing was written (no run directory with results, no store rows): nothing lost or
invented.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from modalab.cli.main import main
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits
from modalab.experiments.errors import DataError, explain_error

TINY = [
    "trainer.max_epochs=1",
    "trainer.batch_size=32",
    "model.embed_dim=8",
    "eval.l2_grid=[0.01]",
    "eval.retrieval_ks=[1]",
]


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _assert_screen(text: str, *names: str) -> None:
    assert "Traceback" not in text, text
    assert len(text.strip().splitlines()) <= 30, text  # one screen
    flat = text.replace("\n", "")  # rich wraps long paths in tables
    for name in names:
        assert name in text or name in flat, (name, text)


def _assert_nothing_written(root: Path) -> None:
    assert not list(root.rglob("metrics.json")), "a run was recorded as finished"
    assert not list(root.rglob("*.parquet")), "rows were written to a store"


# --- configuration errors (exit 2): each names the key that is wrong --------------------

BAD_CONFIGS: list[tuple[list[str], str]] = [
    (["data.noise.audio=inf"], "data.noise.audio"),
    (["data.noise.image=nan"], "data.noise.image"),
    (["data.noise.image=-1"], "data.noise.image"),
    (["data.noise.text=-0.5"], "data.noise.text"),
    (["eval.knn_k=0"], "eval.knn_k"),
    (["eval.knn_k=100000"], "eval.knn_k"),  # checked against the built training split
    (["trainer.devices=0"], "trainer.devices"),
    (["trainer.strategy=warp_drive"], "trainer.strategy"),
    (["trainer.accelerator=quantum"], "trainer.accelerator"),
    (["trainer.max_epochs=-1"], "trainer.max_epochs"),
    (["trainer.batch_size=1"], "trainer.batch_size"),
    (["trainer.precision=17"], "trainer.precision"),
    (["trainer.num_nodes=0"], "trainer.num_nodes"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    (["trainer.check_val_every_n_epoch=0"], "trainer.check_val_every_n_epoch"),
    (["trainer.gradient_clip_val=nan"], "trainer.gradient_clip_val"),
    (["+trainer.max_epoch=3"], "trainer.max_epochs"),  # the typo and the key it meant
    (["scenario=[blur]", "scenario.blur.sigma=nan"], "scenario.blur.sigma"),
    (["scenario=[blur]", "scenario.blur.sigma=inf"], "scenario.blur.sigma"),
    (["scenario=[missing]", "scenario.missing.rate=nan"], "missing.rate"),
    (["scenario=[missing]", "scenario.missing.rate=1.5"], "missing.rate"),
    (["scenario=[gaussian_noise]", "scenario.gaussian_noise.snr_db=nan"], "snr_db"),
    (["scenario=[missing]", "scenario.missing.modalities=[smell]"], "smell"),
    (["method.lr=nan"], "method.lr"),
    (["method.lr=inf"], "method.lr"),
    (["method.lr=-0.1"], "method.lr"),
    (["method.temperature=inf"], "method.temperature"),
    (["method.temperature=0"], "method.temperature"),
    (["method.weight_decay=nan"], "method.weight_decay"),
    (["method.proj_dim=0"], "method.proj_dim"),
    (["model.embed_dim=0"], "model.embed_dim"),
    (["model.encoders.image=cnn2d"], "+model.encoders.image"),  # says to use '+'
    (["+model.encoders.image=resnet9000"], "model.encoders.image"),
    (["data.modalities=[image]"], "method=clip"),  # one-modality CLIP
    (["method=fusion", "data.modalities=[text]"], "method=fusion"),
    (["data.n_sampls=3"], "data.n_sampls"),
    (["method=no_such_method"], "method"),
    (["data=no_such_data"], "data"),
    (["seed=-1"], "seed"),
    (["eval.label_fractions=[nan]"], "eval.label_fractions"),
    (["eval.label_fractions=[1.5]"], "eval.label_fractions"),
    (["eval.knn_k=abc"], "eval.knn_k"),
    (["resume=true"], "run_name"),
    (["data.val_fraction=0.9", "data.test_fraction=0.5"], "data.val_fraction"),
]


@pytest.mark.parametrize(
    ("overrides", "key"), BAD_CONFIGS, ids=[" ".join(c) for c, _ in BAD_CONFIGS]
)
def test_bad_config_exits_2_naming_the_key(
    overrides: list[str], key: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--quiet", *TINY, "data.n_samples=120", *overrides, f"output_dir={tmp_path}"]
    code, text = _cli(argv, capsys)
    assert code == 2, text
    _assert_screen(text, "configuration error", key)
    _assert_nothing_written(tmp_path)


def test_there_are_at_least_40_distinct_bad_configs() -> None:
    assert len({tuple(c) for c, _ in BAD_CONFIGS}) >= 40


# --- environment errors (exit 4) -----------------------------------------------------


def test_unwritable_output_dir_or_store_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    for key in ("output_dir", "store"):
        code, text = _cli(["run", "--quiet", *TINY, f"{key}={blocker}/sub"], capsys)
        assert code == 4, text
        _assert_screen(text, "environment error", f"{key}={blocker}/sub")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_gpu_accelerator_without_gpu_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = _cli(
        ["run", "--quiet", *TINY, "trainer.accelerator=gpu", f"output_dir={tmp_path}"], capsys
    )
    assert code == 4, text
    _assert_screen(text, "environment error", "trainer.accelerator=gpu", "no CUDA GPU")
    assert not list(tmp_path.iterdir())  # refused before the run directory is made


# --- data errors (exit 3): each names the file --------------------------------------


def _npz(path: Path, **changes: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", 60), ("val", 20), ("test", 30)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(n, 1)
    arrays.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def _medmnist_case(root: Path, case: str) -> None:
    path = root / "medmnist" / "pneumoniamnist.npz"
    if case == "missing":
        return
    if case == "truncated":
        _npz(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "crc":
        _npz(path)
        data = bytearray(path.read_bytes())
        middle = len(data) // 3
        data[middle : middle + 64] = bytes(64)  # zeroed bytes inside a member: CRC mismatch
        path.write_bytes(bytes(data))
    elif case == "not_zip":
        path.parent.mkdir(parents=True)
        path.write_text("this is not an npz")
    elif case == "missing_key":
        _npz(path)
        with np.load(path) as archive:
            kept = {k: archive[k] for k in archive.files if k != "test_labels"}
        np.savez(path, **kept)  # type: ignore[arg-type]
    elif case == "label_7":
        labels = (np.arange(60) % 2).reshape(60, 1)
        labels[5] = 7
        _npz(path, train_labels=labels)
    elif case == "negative_label":
        _npz(path, val_labels=-np.ones((20, 1), dtype=np.int64))
    elif case == "labels_shape":
        _npz(path, test_labels=np.zeros((30, 3), dtype=np.int64))
    elif case == "object_array":
        _npz(path)
        with np.load(path) as archive:
            kept = {k: archive[k] for k in archive.files}
        kept["train_labels"] = np.array([object()] * 60, dtype=object)
        np.savez(path, **kept)  # type: ignore[arg-type]
    elif case == "test_leak":
        images = np.random.default_rng(1).integers(0, 256, (30, 28, 28), dtype=np.uint8)
        train = np.random.default_rng(2).integers(0, 256, (60, 28, 28), dtype=np.uint8)
        train[:3] = images[:3]  # three test images are also training images
        _npz(path, train_images=train, test_images=images)
    elif case == "tiny_test":
        _npz(path, test_images=np.zeros((3, 28, 28), np.uint8), test_labels=np.zeros((3, 1)))
    else:  # pragma: no cover
        raise AssertionError(case)


MEDMNIST_CASES = [
    ("missing", "pneumoniamnist.npz"),
    ("truncated", "pneumoniamnist.npz"),
    ("crc", "pneumoniamnist.npz"),
    ("not_zip", "pneumoniamnist.npz"),
    ("missing_key", "test_labels"),
    ("label_7", "outside the declared classes"),
    ("negative_label", "negative label"),
    ("labels_shape", "test_labels"),
    ("object_array", "pneumoniamnist.npz"),
    ("test_leak", "identical to training samples"),
    ("tiny_test", "test has 3 sample(s)"),
]


@pytest.mark.parametrize(("case", "named"), MEDMNIST_CASES, ids=[c for c, _ in MEDMNIST_CASES])
def test_bad_medmnist_file_exits_3_naming_it(
    case: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _medmnist_case(tmp_path / "data", case)
    argv = [
        "run",
        "--quiet",
        *TINY,
        "data=pneumoniamnist",
        f"data.data_dir={tmp_path / 'data'}",
        "method=supervised",
        f"output_dir={tmp_path / 'runs'}",
        f"store={tmp_path / 'store'}",
    ]
    code, text = _cli(argv, capsys)
    assert code == 3, text
    _assert_screen(text, "data error", named)
    _assert_nothing_written(tmp_path)


@pytest.mark.parametrize("case", ["truncated", "crc", "not_zip"])
def test_data_verify_reports_a_corrupt_npz_without_a_traceback(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _medmnist_case(tmp_path, case)
    code, text = _cli(["data", "verify", "pneumoniamnist", "--data-dir", str(tmp_path)], capsys)
    assert code != 0, text
    _assert_screen(text, "pneumoniamnist.npz")
    assert "corrupt" in text


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _manifest_case(root: Path, case: str) -> Path:
    lines = ["filepath,title,label"]
    for i in range(40):
        _png(root / "imgs" / f"{i}.png", i)
        lines.append(f"imgs/{i}.png,a picture number {i},{i % 2}")
    if case == "duplicate_path":
        lines.append("./imgs/3.png,the same picture again,1")
    elif case == "duplicate_bytes":
        shutil.copy(root / "imgs" / "3.png", root / "imgs" / "copy_of_3.png")
        lines.append("imgs/copy_of_3.png,a copy under another name,1")
    elif case == "missing_image":
        lines.append("imgs/absent.png,not there,0")
    elif case == "unreadable_image":
        (root / "imgs" / "broken.png").write_bytes(b"not a png")
        lines.append("imgs/broken.png,broken,0")
    elif case == "two_labels":
        lines.append("imgs/3.png,another caption,0")
    elif case == "missing_column":
        lines = [line.rsplit(",", 1)[0] for line in lines]
        lines[0] = "filepath,caption"
    elif case == "empty":
        lines = lines[:1]
    path = root / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    if case == "binary":
        path.write_bytes(b"\x00\xff\xfe" * 100)
    return path


MANIFEST_CASES = [
    ("duplicate_path", "imgs/3.png is the same file as entry 3"),
    ("duplicate_bytes", "copy_of_3.png has the same bytes"),
    ("missing_image", "absent.png"),
    ("unreadable_image", "broken.png"),
    ("two_labels", "has two labels"),
    ("missing_column", "m.csv: no column"),
    ("empty", "m.csv: the manifest has no rows"),
    ("binary", "m.csv"),
]


@pytest.mark.parametrize(("case", "named"), MANIFEST_CASES, ids=[c for c, _ in MANIFEST_CASES])
def test_bad_manifest_exits_3_naming_the_file(
    case: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _manifest_case(tmp_path, case)
    argv = [
        "run",
        "--quiet",
        *TINY,
        "data=manifest",
        f"data.path={path}",
        "data.label_key=label",
        "data.image_size=16",
        f"output_dir={tmp_path / 'runs'}",
    ]
    code, text = _cli(argv, capsys)
    assert code == 3, text
    _assert_screen(text, "data error", named)
    _assert_nothing_written(tmp_path)


def test_duplicates_skipped_are_counted(tmp_path: Path) -> None:
    from modalab.data.captions import make_manifest

    path = _manifest_case(tmp_path, "duplicate_bytes")
    with pytest.warns(UserWarning, match=r"skipped 1 bad file"):
        splits = make_manifest(
            path=str(path),
            label_key="label",
            image_size=16,
            captions_per_image=1,
            on_error="skip",
        )
    assert splits.info.skipped["count"] == 1
    assert splits.info.skipped["files"] == [str(tmp_path / "imgs" / "copy_of_3.png")]
    assert sum(splits.info.extra["images"].values()) == 40  # 41 entries, the copy dropped


def _coco_case(root: Path, case: str) -> None:
    coco = root / "coco"
    images = coco / "val2017"
    for i in range(1, 31):
        _png(images / f"{i:012d}.jpg", i)
    captions = {"annotations": [{"image_id": i, "caption": f"picture {i}"} for i in range(1, 31)]}
    instances = {
        "categories": [
            {"id": 1, "name": "cat", "supercategory": "animal"},
            {"id": 2, "name": "car", "supercategory": "vehicle"},
        ],
        "annotations": [
            {"image_id": i, "category_id": 1 + i % 2, "area": 10.0} for i in range(1, 31)
        ],
    }
    if case == "no_annotations":
        captions = {"images": []}  # type: ignore[dict-item]
    elif case == "no_caption":
        captions["annotations"][4] = {"image_id": 5}
    elif case == "unknown_category":
        instances["annotations"][2]["category_id"] = 99  # type: ignore[index]
    elif case == "copied_image":
        shutil.copy(images / f"{7:012d}.jpg", images / f"{31:012d}.jpg")
        captions["annotations"].append({"image_id": 31, "caption": "the same picture"})
    (coco / "annotations").mkdir(parents=True)
    text = json.dumps(captions)
    if case == "truncated_json":
        text = text[: len(text) // 2]
    (coco / "annotations" / "captions_val2017.json").write_text(text)
    (coco / "annotations" / "instances_val2017.json").write_text(json.dumps(instances))


COCO_CASES = [
    ("no_annotations", "no 'annotations' list"),
    ("no_caption", "no 'caption' field"),
    ("unknown_category", "category_id 99"),
    ("copied_image", "000000000031.jpg has the same bytes"),
    ("truncated_json", "captions_val2017.json"),
]


@pytest.mark.parametrize(("case", "named"), COCO_CASES, ids=[c for c, _ in COCO_CASES])
def test_bad_coco_exits_3_naming_the_file(
    case: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _coco_case(tmp_path, case)
    argv = [
        "run",
        "--quiet",
        *TINY,
        "data=coco",
        f"data.data_dir={tmp_path}",
        "data.splits=[val]",
        "data.image_size=16",
        f"output_dir={tmp_path / 'runs'}",
    ]
    code, text = _cli(argv, capsys)
    assert code == 3, text
    _assert_screen(text, "data error", named)
    _assert_nothing_written(tmp_path / "runs")


def test_unsafe_yaml_in_a_run_directory_is_refused_as_such(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "evil"
    run_dir.mkdir()
    marker = tmp_path / "executed"
    (run_dir / "config.yaml").write_text(
        f"seed: !!python/object/apply:os.system ['touch {marker}']\n"
    )
    code, text = _cli(
        ["run", "--quiet", *TINY, f"output_dir={tmp_path}", "run_name=evil", "resume=true"], capsys
    )
    assert code == 3, text
    _assert_screen(text, "data error", "unsafe YAML")
    assert not marker.exists()


def test_unsafe_pickle_is_reported_as_a_data_error() -> None:
    explained = explain_error(pickle.UnpicklingError("Weights only load failed: os.system"))
    assert explained is not None and explained.code == 3
    assert "refused to unpickle" in explained.message


def test_corrupt_store_file_is_named_by_summary_and_marked_by_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modalab.experiments.store import COLUMNS, ResultsStore
    from modalab.experiments.sweep import expand_study, load_study

    study = tmp_path / "study.yaml"
    study.write_text(
        f"""
name: corrupt
store: {tmp_path}/store
output_dir: {tmp_path}/runs
overrides: [data.n_samples=120]
methods: {{supervised: []}}
scenarios:
  s: {{overrides: ["scenario=[missing]"], severity: scenario.missing.rate, values: [0.0, 0.5]}}
"""
    )
    runs, _ = expand_study(load_study(study))
    store = ResultsStore(tmp_path / "store")
    for run in runs:
        row = {c: "" for c in COLUMNS} | {"run_id": run.run_id, "severity": 0.0, "seed": 0}
        store.append(run.run_id, [row | {"metric": "acc", "value": 0.5}])
    victim = store.path(runs[0].run_id)
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    code, text = _cli(["sweep", str(study), "--dry-run"], capsys)
    assert code == 0
    lines = [line for line in text.splitlines() if runs[0].run_id in line]
    assert lines and lines[0].startswith("corrupt"), text
    assert any(line.startswith("done") and runs[1].run_id in line for line in text.splitlines())
    code, text = _cli(["sweep", str(study), "--summary"], capsys)
    assert code == 3, text
    _assert_screen(text, "data error", victim.name)
    assert store.run_ids() == {runs[1].run_id}  # the corrupt run is to be re-run


def test_truncated_last_checkpoint_falls_back_to_the_intact_one(tmp_path: Path) -> None:
    from modalab.experiments.checkpoint import intact_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    torch.save({"epoch": 2, "state_dict": {"w": torch.ones(3)}}, folder / "epoch=2-step=10.ckpt")
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(3)}}, folder / "last.ckpt")
    assert intact_checkpoint(folder) == folder / "last.ckpt"
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match=r"last.ckpt .* do not load .* intact epoch=2-step=10"):
        assert intact_checkpoint(folder) == folder / "epoch=2-step=10.ckpt"
    (folder / "epoch=2-step=10.ckpt").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=r"No checkpoint .* loads"):
        assert intact_checkpoint(folder) is None
    assert intact_checkpoint(tmp_path / "absent") is None


def _splits(test_inputs: torch.Tensor) -> Splits:
    def part(x: torch.Tensor) -> MultimodalTensorDataset:
        return MultimodalTensorDataset({"image": x}, torch.arange(len(x)) % 2, num_classes=2)

    g = torch.Generator().manual_seed(0)
    return Splits(
        part(torch.randn(40, 4, generator=g)),
        part(torch.randn(12, 4, generator=g)),
        part(test_inputs),
        2,
        DataInfo(class_names=["a", "b"]),
    )


def test_inf_only_in_the_test_split_is_a_data_error_before_training() -> None:
    from modalab.experiments.data_checks import check_run_data

    other = torch.Generator().manual_seed(1)  # not the global RNG: other tests seed it
    test = torch.randn(20, 4, generator=other)
    test[7, 2] = float("inf")
    cfg = {"data": {"name": "toy"}, "method": {"name": "supervised"}, "eval": {"knn_k": 5}}
    with pytest.raises(DataError, match=r"1 test sample\(s\) of image hold NaN or Inf .*\[7\]"):
        check_run_data(cfg, _splits(test))
    check_run_data(cfg, _splits(torch.randn(20, 4, generator=other)))  # finite: accepted


def test_non_finite_features_write_failure_json(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from modalab.experiments.data_checks import check_finite_features
    from modalab.experiments.errors import TrainingError

    good = torch.randn(10, 3)
    bad = good.clone()
    bad[4, 1] = float("nan")
    absent = good.clone()
    absent[2] = float("nan")  # an absent sample's features are not checked
    present = torch.ones(10, dtype=torch.bool)
    present[2] = False
    fine = SimpleNamespace(features={"image": absent}, joint={}, present={"image": present})
    check_finite_features({"train": fine}, tmp_path)
    assert not (tmp_path / "failure.json").exists()
    broken = SimpleNamespace(
        features={"image": bad}, joint={}, present={"image": torch.ones(10).bool()}
    )
    with pytest.raises(TrainingError, match=r"NaN/Inf in the test features of image \(1 of 10"):
        check_finite_features({"train": fine, "test": broken}, tmp_path)
    assert "NaN/Inf" in json.loads((tmp_path / "failure.json").read_text())["error"]


def test_leakage_into_val_is_removed_and_recorded() -> None:
    from modalab.data.integrity import remove_split_leakage

    splits = _splits(torch.randn(20, 4, generator=torch.Generator().manual_seed(1)))
    splits.val.inputs["image"][3] = splits.train.inputs["image"][5]
    out = remove_split_leakage(splits, "raise", "toy")
    assert len(out.val) == 11 and out.info.leakage["removed"] == {"val": 1, "test": 0}
    splits.test.inputs["image"][0] = splits.train.inputs["image"][9]
    with pytest.raises(DataError, match=r"test samples identical to training samples"):
        remove_split_leakage(splits, "raise", "toy")
    out = remove_split_leakage(splits, "skip", "toy")
    assert len(out.test) == 19 and out.info.leakage["removed"]["test"] == 1


def test_corrupt_data_cases_number_at_least_25() -> None:
    cases = len(MEDMNIST_CASES) + len(MANIFEST_CASES) + len(COCO_CASES) + 3 + 6
    assert cases >= 25  # + 3 `data verify` cases, + yaml, pickle, store, ckpt, Inf, NaN


def test_verbose_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(Exception, match=r"data.noise.image"):
        main(["--verbose", "run", "data.noise.image=nan", f"output_dir={tmp_path}"])


@pytest.mark.slow
def test_skipped_files_reach_metrics_json_the_store_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modalab.experiments.store import ResultsStore

    path = _manifest_case(tmp_path, "unreadable_image")
    argv = [
        "run",
        "--quiet",
        *TINY,
        "data=manifest",
        f"data.path={path}",
        "data.label_key=label",
        "data.image_size=16",
        "data.on_error=skip",
        "method=supervised",
        f"output_dir={tmp_path / 'runs'}",
        "run_name=skip",
        f"store={tmp_path / 'store'}",
    ]
    code, text = _cli(argv, capsys)
    assert code == 0, text
    payload = json.loads((tmp_path / "runs" / "skip" / "metrics.json").read_text())
    assert payload["skipped"]["count"] == 1
    assert [Path(f).name for f in payload["skipped"]["files"]] == ["broken.png"]
    rows = ResultsStore(tmp_path / "store").read()
    assert rows.loc[rows["metric"] == "skipped_files", "value"].tolist() == [1.0]
    assert "skipped_files" in text  # printed with the run's results
    code, text = _cli([*argv, "resume=true"], capsys)  # a finished run: results read back
    assert code == 0 and "skipped_files" in text


def test_max_per_split_is_stratified_and_seeded(tmp_path: Path) -> None:
    from modalab.data.medmnist import make_pneumoniamnist

    sorted_labels = np.array([0] * 40 + [1] * 20).reshape(60, 1)  # a class-sorted file
    _npz(tmp_path / "medmnist" / "pneumoniamnist.npz", train_labels=sorted_labels)

    def build(seed: int) -> Splits:
        return make_pneumoniamnist(data_dir=str(tmp_path), max_per_split=12, seed=seed)

    first, again, other = build(0), build(0), build(1)
    counts = torch.bincount(first.train.label, minlength=2).tolist()
    assert counts == [8, 4]  # 12 rows in the file's 2:1 proportion, not the first 12 rows
    assert torch.equal(first.train.inputs["image"], again.train.inputs["image"])
    assert not torch.equal(first.train.inputs["image"], other.train.inputs["image"])
    assert len(first.val) == 12 and len(first.test) == 12


@pytest.mark.parametrize("size", [1, 2, 7, 30, 59])
def test_stratified_subset_keeps_class_shares(size: int) -> None:
    from modalab.data.integrity import stratified_subset

    labels = np.array([0] * 30 + [1] * 20 + [2] * 10)
    rows = stratified_subset(labels, size, np.random.default_rng(size))
    assert len(rows) == size and len(set(rows.tolist())) == size
    got = np.bincount(labels[rows], minlength=3)
    expected = np.array([30, 20, 10]) * size / 60
    assert np.all(np.abs(got - expected) <= 1 + (size >= 3))  # rounding, one of each class
    if size >= 3:
        assert np.all(got >= 1)


@pytest.mark.parametrize(
    "overrides",
    [["data.n_samples=10"], ["data.n_samples=100", "data.test_fraction=0.05"]],
    ids=["n_samples=10", "test_fraction=0.05"],
)
def test_test_split_too_small_to_score_exits_3_with_its_size(
    overrides: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["run", "--quiet", *TINY, *overrides, f"output_dir={tmp_path}"]
    code, text = _cli(argv, capsys)
    assert code == 3, text
    _assert_screen(text, "data error", "fewer than 10", "data.n_samples=")
    _assert_nothing_written(tmp_path)


def test_a_long_missing_data_message_keeps_how_to_get_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from modalab.data.files import MissingDataError

    listed = "\n".join(f"  - {tmp_path}/file{i}.wav" for i in range(3000))
    error = MissingDataError(f"Missing 3000 file(s) in {tmp_path}:\n{listed}\nTo get them: run X")
    explained = explain_error(error)
    assert explained is not None and explained.code == 3
    lines = explained.message.splitlines()
    assert len(lines) <= 24 and "Missing 3000 file(s)" in lines[0]
    assert lines[-1] == "To get them: run X" and "more lines" in explained.message
