"""End-to-end: `modalab run` a tiny model, then `modalab counterfactual` its run directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from modalab.cli.main import main
from modalab.experiments.rundir import load_run

pytestmark = pytest.mark.slow

TINY = [
    "data.n_samples=300",
    "trainer.max_epochs=1",
    "trainer.batch_size=32",
    "model.embed_dim=16",
    "data.image_size=16",
    "data.audio_length=256",
    "eval.knn_k=5",
]


def make_run(tmp_path: Path, method: str) -> Path:
    code = main(
        [
            "run",
            f"method={method}",
            *TINY,
            f"output_dir={tmp_path}",
            f"run_name={method}",
            "--quiet",
        ]
    )
    assert code == 0
    return tmp_path / method


def test_counterfactual_cli_on_supervised_run(tmp_path: Path, capsys) -> None:
    run_dir = make_run(tmp_path, "supervised")
    code = main(
        [
            "counterfactual",
            str(run_dir),
            "--analyses",
            "ablation,shapley,swap,debias",
            "--debias-modality",
            "text",
        ]
    )
    assert code == 0
    out_dir = run_dir / "counterfactual"
    for name in (
        "counterfactual.parquet",
        "counterfactual.csv",
        "settings.json",
        "shapley_bars.png",
        "shapley_bars.pdf",
        "shapley_per_class.png",
        "swap_image.png",
        "swap_audio.pdf",
        "ablation_per_class.png",
    ):
        assert (out_dir / name).stat().st_size > 0, name
    assert not list(out_dir.glob(".*.tmp"))  # atomic writes leave no temporary files
    table = pd.read_parquet(out_dir / "counterfactual.parquet")
    csv = pd.read_csv(
        out_dir / "counterfactual.csv", keep_default_na=False, dtype={"class": str, "target": str}
    )
    assert len(table) == len(csv) and list(table.columns) == list(csv.columns)
    pooled = table[(table["analysis"] == "shapley") & (table["class"] == "all")]
    values = pooled[pooled["statistic"] == "shapley"]["value"]
    v_full = float(pooled[pooled["statistic"] == "v_full"]["value"].iloc[0])
    v_empty = float(pooled[pooled["statistic"] == "v_empty"]["value"].iloc[0])
    assert float(values.sum()) == pytest.approx(v_full - v_empty, abs=1e-9)  # efficiency
    # v_full is the accuracy of the reloaded model run directly on the test split
    loaded = load_run(run_dir)
    test = loaded.splits.test
    with torch.no_grad():
        logits = loaded.method(test.__getitems__(list(range(len(test)))))
    assert v_full == pytest.approx(float((logits.argmax(1) == test.clean_label).float().mean()))
    assert set(table["modality"][table["analysis"] == "swap"]) == {"image", "text", "audio"}
    assert "shapley:share" in capsys.readouterr().out


def test_counterfactual_cli_on_clip_run(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "clip")
    code = main(
        [
            "counterfactual",
            str(run_dir),
            "--analyses",
            "shapley,perceptual,missing_rate,views_present",
            "--missing-rates",
            "0",
            "0.5",
            "--max-samples",
            "50",
            "--head-hidden",
            "32",
        ]
    )
    assert code == 0
    table = pd.read_parquet(run_dir / "counterfactual" / "counterfactual.parquet")
    assert table.loc[table["class"] == "all", "n"].max() == 50
    assert {"shapley", "interaction", "perceptual"} <= set(table["analysis"])
    curve = table[table["analysis"] == "missing_rate"]
    assert set(curve["target"]) == {"0", "0.5"} and set(curve["modality"]) == {"fused"}
    views = table[(table["analysis"] == "views_present") & (table["statistic"] == "subset")]
    assert views.groupby("target")["modality"].nunique().to_dict() == {
        "1 of 3": 3,
        "2 of 3": 3,
        "3 of 3": 1,
    }
    # all three views present is the model as evaluated: the Shapley analysis' v(all)
    full = views[(views["target"] == "3 of 3") & (views["class"] == "all")]["value"]
    v_full = table[(table["statistic"] == "v_full") & (table["class"] == "all")]["value"]
    assert float(full.iloc[0]) == pytest.approx(float(v_full.iloc[0]), abs=1e-12)


def test_counterfactual_cli_errors(tmp_path: Path, capsys) -> None:
    assert main(["counterfactual", str(tmp_path / "nope")]) == 2
    assert "config.yaml" in capsys.readouterr().err
    assert main(["counterfactual"]) == 2  # neither a run nor a study
    assert "not both" in capsys.readouterr().err
    assert main(["counterfactual", str(tmp_path), "--study", "studies/counterfactual.yaml"]) == 2
    for bad in (["--missing-rates", "half"], ["--study", "s.yaml", "--intuition", "avmnist"]):
        with pytest.raises(SystemExit):  # argparse: the usage and the invalid value
            main(["counterfactual", *bad])
        assert "invalid" in capsys.readouterr().err
    study = yaml.safe_load(
        (Path(__file__).parents[1] / "studies" / "counterfactual.yaml").read_text()
    )
    study["store"] = str(tmp_path / "results" / "counterfactual")  # holds no runs
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    assert main(["counterfactual", "--study", str(tmp_path / "study.yaml")]) == 2
    assert "modalab sweep" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # nothing half-written
