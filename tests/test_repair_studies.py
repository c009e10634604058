"""The repair studies run end to end at smoke size and their tables come from the store."""

import re
from pathlib import Path

import numpy as np
import pytest

from modalab.experiments.store import ResultsStore
from modalab.experiments.sweep import expand_study, load_study, run_sweep
from modalab.experiments.tables import study_tables

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ("distill", "missing", "imbalance", "misaligned", "wrong_labels")


@pytest.mark.slow
def test_repair_studies_smoke_and_tables(tmp_path):
    for study in STUDIES:
        spec = load_study(ROOT / "studies" / f"repair_{study}.yaml")
        assert {"shapes", "avmnist"} <= set(spec.datasets) and spec.seeds == [0, 1, 2, 3, 4]
        spec.datasets = {"shapes": spec.datasets["shapes"]}  # AV-MNIST files are not in CI
        spec.smoke.datasets = {"shapes": spec.smoke.datasets["shapes"]}
        spec.output_dir = str(tmp_path / "runs" / study)
        store = str(tmp_path / f"repair_{study}_smoke")
        runs, _ = expand_study(spec, smoke=True, store=store)
        summary = run_sweep(runs, store, jobs=1, progress=lambda line: None)
        assert summary.failed == [] and summary.done == len(runs)
        assert set(ResultsStore(store).read()["method"]) == set(spec.methods)
    text = "\n".join(
        study_tables(ROOT / "studies" / f"repair_{s}.yaml", tmp_path, smoke=True) for s in STUDIES
    )
    assert "no rows" not in text and text.count("####") >= 6

    # A cell equals the store's value, read independently: the fused head of the dropout
    # variant at test missing rate 1.
    frame = ResultsStore(tmp_path / "repair_missing_smoke").read()
    hit = frame[
        (frame.method == "dropout")
        & (frame.metric == "head_acc")
        & (frame.modality == "fused")
        & np.isclose(frame.severity, 1.0)
    ]
    row = next(line for line in text.splitlines() if line.startswith("| modality dropout 0.5 |"))
    last = row.split("|")[-2]
    assert float(re.findall(r"\d\.\d{3}", last)[0]) == pytest.approx(hit.value.iloc[0], abs=5e-4)
    # The flagged-pair precision of broken pairs is recorded for every clip_rince variant.
    flags = ResultsStore(tmp_path / "repair_misaligned_smoke").read()
    flags = flags[(flags.metric == "flag_precision") & (flags.severity > 0)]
    assert set(flags.method) == {"infonce", "rince_q1", "small_loss"}
