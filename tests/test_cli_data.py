from pathlib import Path

import pytest

from _real_data import shared_data_dir
from modalab.cli.main import main


def test_data_verify_present_and_missing(tmp_path, capsys):
    root = shared_data_dir("mnist", "fsdd/recordings")
    assert main(["data", "verify", "avmnist", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "mnist in" in out and "2 ok" in out and "fsdd in" in out
    assert main(["data", "verify", "avmnist", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out.replace("\n", "")
    assert "t10k-images-idx3-ubyte.gz" in out and "modalab data download mnist" in out
    assert "MODALAB_DATA" in out


def test_data_list_and_unknown_name(tmp_path, capsys):
    assert main(["data", "list", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("avmnist", "pneumoniamnist", "coco", "manifest", "digits", "mnist5k", "fsdd"):
        assert name in out
    assert main(["data", "verify", "imagenet", "--data-dir", str(tmp_path)]) == 2
    assert "Unknown dataset or data source 'imagenet'" in capsys.readouterr().out.replace("\n", "")


@pytest.mark.slow
def test_run_avmnist_clip_and_supervised_end_to_end(tmp_path, monkeypatch):
    root = shared_data_dir("mnist", "fsdd/recordings")
    monkeypatch.setenv("MODALAB_DATA", str(root))
    monkeypatch.setenv("MODALAB_CACHE", str(tmp_path / "cache"))
    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import run

    for method in ("clip", "supervised"):
        cfg = compose_config(
            [
                "data=avmnist",
                "data.max_images=400",
                f"method={method}",
                "trainer.max_epochs=1",
                "trainer.batch_size=64",
                "trainer.enable_progress_bar=false",
                f"output_dir={tmp_path}",
                f"run_name={method}",
            ]
        )
        result = run(cfg, quiet=True)
        assert 0.0 <= result.value("linear_probe_acc", "fused") <= 1.0
        if method == "clip":  # supervised trains no joint space: no retrieval rows
            assert result.value("recall@1", "image->audio") >= 0.0
        assert (tmp_path / method / "metrics.json").is_file()


@pytest.mark.slow
def test_run_coco_with_minilm_reports_zero_shot(tmp_path, monkeypatch):
    root = shared_data_dir("coco_mini/annotations_full")
    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import run

    cfg = compose_config(
        [
            "data=coco",
            f"data.data_dir={root}",
            "data.folder=coco_mini",
            "data.annotation_dirs=[annotations,annotations_full]",
            "data.image_size=32",
            "data.captions_per_image=1",
            "+model.encoders.text=minilm",
            "trainer.max_epochs=1",
            "trainer.batch_size=32",
            f"output_dir={tmp_path}",
            "run_name=coco",
        ]
    )
    result = run(cfg, quiet=True)
    accuracy = result.value("zero_shot_acc", "image")
    assert 0.0 <= accuracy <= 1.0


def test_data_verify_fails_on_a_checksum_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gzip

    root = shared_data_dir("mnist", "fsdd/recordings")
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for path in (root / "mnist").glob("*.gz"):
        (mnist / path.name).symlink_to(path)
    (tmp_path / "fsdd").symlink_to(root / "fsdd")
    assert main(["data", "verify", "avmnist", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    # Same format (a valid IDX label file), one label changed: only the checksum tells.
    name = "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress((root / "mnist" / name).read_bytes()))
    content[8] = (content[8] + 1) % 10
    (mnist / name).unlink()
    (mnist / name).write_bytes(gzip.compress(bytes(content)))
    assert main(["data", "verify", "avmnist", "--data-dir", str(tmp_path)]) == 1
    out = "".join(capsys.readouterr().out.split())  # rich wraps long paths
    assert "differs" in out and name in out and "modalabdatadownloadmnist" in out
