"""scripts/study_tables.py: the study's tables computed from a store, checked by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modalab.experiments.store import COLUMNS, ResultsStore

SCRIPT = Path(__file__).parents[1] / "scripts" / "study_tables.py"


def load_script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("study_tables", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_tables"] = module
    spec.loader.exec_module(module)
    return module


VALUES = {  # method -> severity -> per-seed values
    "clip": {0.0: [0.90, 0.92, 0.94], 0.5: [0.80, 0.81, 0.83], 1.0: [0.50, 0.55, 0.60]},
    "supervised": {0.0: [0.95, 0.96, 0.97], 0.5: [0.90, 0.91, 0.92], 1.0: [0.85, 0.86, 0.88]},
}


def write_store(root: Path) -> None:
    store = ResultsStore(root)
    for method, curve in VALUES.items():
        for severity, values in curve.items():
            for seed, value in enumerate(values):
                run_id = f"{method}-{severity}-{seed}"
                row = {c: "" for c in COLUMNS} | {
                    "run_id": run_id,
                    "study": "toy",
                    "method": method,
                    "data": "shapes",
                    "scenario": "missing",
                    "severity": severity,
                    "severity_key": "scenario.missing.rate",
                    "seed": seed,
                    "metric": "linear_probe_acc",
                    "modality": "fused",
                    "condition": "labels=1",
                    "value": value,
                }
                store.append(run_id, [row])


def stars(p: float) -> str:
    return "*" * sum(p < a for a in (0.05, 0.01, 0.001))


def test_curve_table_matches_hand_computed_statistics(tmp_path: Path) -> None:
    tables = load_script()
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    # First edition: Welch, no correction.
    text = tables.curve_table(frame, "fused", test="welch", correction="none")
    rows = {line.split(" | ")[0].strip("| ").split(" ")[0]: line for line in text.splitlines()}
    clip = [c.strip() for c in rows["clip"].strip("|").split("|")]
    # mean ± sample std at the hardest level, with Welch's marker against supervised
    hard_c, hard_s = VALUES["clip"][1.0], VALUES["supervised"][1.0]
    p = stats.ttest_ind(hard_c, hard_s, equal_var=False).pvalue
    expected = f"{np.mean(hard_c):.3f} ± {np.std(hard_c, ddof=1):.3f} {stars(p)}"
    assert clip[3] == expected.rstrip()
    # drop per seed, Welch-tested against the baseline's drops
    drop_c = np.subtract(VALUES["clip"][0.0], hard_c)
    drop_s = np.subtract(VALUES["supervised"][0.0], hard_s)
    p_drop = stats.ttest_ind(drop_c, drop_s, equal_var=False).pvalue
    expected = f"{drop_c.mean():.3f} ± {drop_c.std(ddof=1):.3f} {stars(p_drop)}".rstrip()
    assert clip[4] == expected
    # normalised trapezoidal area over the severity axis [0, 1]
    means = [np.mean(VALUES["clip"][s]) for s in (0.0, 0.5, 1.0)]
    area = 0.5 * (means[0] + means[1]) / 2 + 0.5 * (means[1] + means[2]) / 2  # range 1
    assert clip[5] == f"{area:.3f}"
    assert rows["supervised"].rstrip(" |").endswith("—")


def test_curve_table_pairs_by_seed_and_corrects_within_the_table(tmp_path: Path) -> None:
    """Default: paired t over shared seeds, Holm over the table's four cells (3 levels + drop)."""
    from statsmodels.stats.multitest import multipletests

    tables = load_script()
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    text = tables.curve_table(frame, "fused")
    rows = {line.split(" | ")[0].strip("| ").split(" ")[0]: line for line in text.splitlines()}
    clip = [c.strip() for c in rows["clip"].strip("|").split("|")]
    c, s = VALUES["clip"], VALUES["supervised"]
    raw = [stats.ttest_rel(c[v], s[v]).pvalue for v in (0.0, 0.5, 1.0)]
    drop_c, drop_s = np.subtract(c[0.0], c[1.0]), np.subtract(s[0.0], s[1.0])
    raw.append(stats.ttest_rel(drop_c, drop_s).pvalue)
    adjusted = multipletests(raw, method="holm")[1]
    for column, (values, p) in enumerate(zip([c[0.0], c[0.5], c[1.0], drop_c], adjusted)):
        expected = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} {stars(p)}".rstrip()
        assert clip[1 + column] == expected


def test_curve_table_marks_zero_variance_and_collapse(tmp_path: Path) -> None:
    tables = load_script()
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    flat = frame.copy()
    flat.loc[(flat.method == "clip") & (flat.severity == 1.0), "value"] = 0.25
    majority = flat[flat.severity == 1.0].assign(metric="linear_probe_majority_rate", value=0.25)
    text = tables.curve_table(pd.concat([flat, majority]), "fused")
    clip = next(line for line in text.splitlines() if line.startswith("| clip"))
    hard = [c.strip() for c in clip.strip("|").split("|")][3]
    assert hard.startswith("0.250 ± 0.000") and hard.endswith("†‡")
    supervised = next(line for line in text.splitlines() if line.startswith("| supervised"))
    assert "‡" not in supervised


def test_check_fails_on_a_stale_document(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = load_script()
    write_store(tmp_path / "results" / "missing_modality")
    doc = tmp_path / "study.md"
    doc.write_text("nothing here\n")
    argv = ["study_tables.py", "missing_modality", "--results", str(tmp_path / "results")]

    def run(*extra: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", [*argv, *extra])
        try:
            tables.main()
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        return code, capsys.readouterr().out

    code, out = run("--check", str(doc))
    assert code == 1 and "0/1 tables" in out
    code, printed = run()
    doc.write_text(printed)
    code, out = run("--check", str(doc))
    assert code == 0 and "1/1 tables" in out


def test_curve_table_bootstrap_interval_from_recorded_test_sizes(tmp_path: Path) -> None:
    """With linear_probe_n_test rows a cell carries the bootstrap CI over its test samples."""
    from modalab.evaluation import statistics

    tables = load_script()
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    sizes = frame.assign(metric="linear_probe_n_test", value=200.0)
    text = tables.curve_table(pd.concat([frame, sizes]), "fused")
    clip = next(line for line in text.splitlines() if line.startswith("| clip"))
    cell = [c.strip() for c in clip.strip("|").split("|")][1]
    runs = [statistics.correctness_from_accuracy(v, 200) for v in VALUES["clip"][0.0]]
    ci = statistics.bootstrap_ci(runs, n_resamples=1000, seed=0)
    assert f"[{ci.low:.3f}, {ci.high:.3f}]" in cell
    plain = tables.curve_table(frame, "fused")
    assert "[" not in next(line for line in plain.splitlines() if line.startswith("| clip"))
