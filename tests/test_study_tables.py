"""Study tables (modalab.experiments.tables): cells checked by hand against scipy/statsmodels."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from modalab.cli.main import main
from modalab.evaluation import statistics
from modalab.experiments.config import ConfigError
from modalab.experiments.store import COLUMNS, ResultsStore
from modalab.experiments.sweep import load_study
from modalab.experiments.tables import (
    TableSpec,
    curve_table,
    grid_table,
    load_tables,
    validate_tables,
)

STUDIES = Path(__file__).parents[1] / "studies"
VALUES = {  # method -> severity -> per-seed values
    "clip": {0.0: [0.90, 0.92, 0.94], 0.5: [0.80, 0.81, 0.83], 1.0: [0.50, 0.55, 0.60]},
    "supervised": {0.0: [0.95, 0.96, 0.97], 0.5: [0.90, 0.91, 0.92], 1.0: [0.85, 0.86, 0.88]},
}


def append_planted(
    store: ResultsStore,
    curves: dict[tuple[str, str], dict[float, list[float]]],
    **fields: object,
) -> None:
    """One row per (method, modality) → severity → per-seed value, labelled like a sweep's."""
    for (method, modality), curve in curves.items():
        for severity, values in curve.items():
            for seed, value in enumerate(values):
                run_id = f"{method}-{modality}-{severity}-{seed}"
                row = {c: "" for c in COLUMNS} | {
                    "run_id": run_id,
                    "method": method,
                    "data": "shapes",
                    "severity": severity,
                    "seed": seed,
                    "modality": modality,
                    "value": value,
                    **fields,
                }
                store.append(run_id, [row])


def write_store(root: Path, metric: str = "linear_probe_acc", condition: str = "labels=1") -> None:
    append_planted(
        ResultsStore(root),
        {(method, "fused"): curve for method, curve in VALUES.items()},
        study="toy",
        scenario="missing",
        severity_key="scenario.missing.rate",
        metric=metric,
        condition=condition,
    )


def stars(p: float) -> str:
    return "*" * sum(p < a for a in (0.05, 0.01, 0.001))


def cells_of(text: str, label: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {label}"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_curve_table_matches_hand_computed_statistics(tmp_path: Path) -> None:
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    text = curve_table(frame, "fused", test="welch", correction="none")
    clip = cells_of(text, "clip")
    hard_c, hard_s = VALUES["clip"][1.0], VALUES["supervised"][1.0]
    p = stats.ttest_ind(hard_c, hard_s, equal_var=False).pvalue
    assert clip[3] == f"{np.mean(hard_c):.3f} ± {np.std(hard_c, ddof=1):.3f} {stars(p)}".rstrip()
    drop_c = np.subtract(VALUES["clip"][0.0], hard_c)
    drop_s = np.subtract(VALUES["supervised"][0.0], hard_s)
    p_drop = stats.ttest_ind(drop_c, drop_s, equal_var=False).pvalue
    assert clip[4] == f"{drop_c.mean():.3f} ± {drop_c.std(ddof=1):.3f} {stars(p_drop)}".rstrip()
    means = [np.mean(VALUES["clip"][s]) for s in (0.0, 0.5, 1.0)]
    area = 0.5 * (means[0] + means[1]) / 2 + 0.5 * (means[1] + means[2]) / 2  # range 1
    assert clip[5] == f"{area:.3f}"
    assert cells_of(text, "supervised")[-1] == "—"


def test_curve_table_pairs_by_seed_and_corrects_within_the_table(tmp_path: Path) -> None:
    """Default: paired t over shared seeds, Holm over the table's four cells (3 levels + drop)."""
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    clip = cells_of(curve_table(frame, "fused"), "clip")
    c, s = VALUES["clip"], VALUES["supervised"]
    raw = [stats.ttest_rel(c[v], s[v]).pvalue for v in (0.0, 0.5, 1.0)]
    drop_c, drop_s = np.subtract(c[0.0], c[1.0]), np.subtract(s[0.0], s[1.0])
    raw.append(stats.ttest_rel(drop_c, drop_s).pvalue)
    adjusted = multipletests(raw, method="holm")[1]
    for column, (values, p) in enumerate(zip([c[0.0], c[0.5], c[1.0], drop_c], adjusted)):
        expected = f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} {stars(p)}".rstrip()
        assert clip[1 + column] == expected


def test_curve_table_marks_zero_variance_and_collapse(tmp_path: Path) -> None:
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    flat = frame.copy()
    flat.loc[(flat.method == "clip") & (flat.severity == 1.0), "value"] = 0.25
    majority = flat[flat.severity == 1.0].assign(metric="linear_probe_majority_rate", value=0.25)
    text = curve_table(pd.concat([flat, majority]), "fused")
    hard = cells_of(text, "clip")[3]
    assert hard.startswith("0.250 ± 0.000") and hard.endswith("†‡")
    assert "‡" not in "".join(cells_of(text, "supervised"))


def test_curve_table_bootstrap_interval_from_recorded_test_sizes(tmp_path: Path) -> None:
    write_store(tmp_path / "toy")
    frame = ResultsStore(tmp_path / "toy").read()
    sizes = frame.assign(metric="linear_probe_n_test", value=200.0)
    cell = cells_of(curve_table(pd.concat([frame, sizes]), "fused"), "clip")[1]
    runs = [statistics.correctness_from_accuracy(v, 200) for v in VALUES["clip"][0.0]]
    ci = statistics.bootstrap_ci(runs, n_resamples=1000, seed=0)
    assert f"[{ci.low:.3f}, {ci.high:.3f}]" in cell
    assert "[" not in "".join(cells_of(curve_table(frame, "fused"), "clip"))


def grid_spec(**changes: object) -> TableSpec:
    spec = TableSpec(
        kind="grid",
        title="Toy on {data}: {metric}",
        where={"metric": "head_acc", "modality": "fused"},
        rows={"baseline row": {"method": "supervised"}, "clip row": {"method": "clip"}},
        columns={"rate {severity:g} ({percent:g}%)": {"severity": "*"}},
        baseline="baseline row",
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def test_grid_table_cells_expanded_columns_and_footnote(tmp_path: Path) -> None:
    write_store(tmp_path / "toy", metric="head_acc", condition="")
    frame = ResultsStore(tmp_path / "toy").read()
    text = grid_table(frame, grid_spec(), {"data": "shapes"}, test="auto", correction="bh")
    assert text.startswith("#### Toy on shapes: head_acc")
    header = text.splitlines()[2]
    assert header == "|  | rate 0 (0%) | rate 0.5 (50%) | rate 1 (100%) |"
    c, s = VALUES["clip"], VALUES["supervised"]
    raw = [stats.ttest_rel(c[v], s[v]).pvalue for v in (0.0, 0.5, 1.0)]
    adjusted = multipletests(raw, method="fdr_bh")[1]
    clip = cells_of(text, "clip row")
    for column, (v, p) in enumerate(zip((0.0, 0.5, 1.0), adjusted)):
        mean, std = np.mean(c[v]), np.std(c[v], ddof=1)
        assert clip[1 + column] == f"{mean:.3f} ± {std:.3f} p_adj={p:.3f} {stars(p)}".rstrip()
    base = cells_of(text, "baseline row")[1]
    assert "p" not in base and base.startswith(f"{np.mean(s[0.0]):.3f} ± ")
    assert "Benjamini–Hochberg-corrected" in text and "seeds [0, 1, 2]" in text
    untested = grid_table(frame, grid_spec(untested=["clip row"]), {"data": "shapes"})
    assert "p_adj" not in untested.split("Mean ±")[0]


def test_grid_table_list_values_keep_only_found_values(tmp_path: Path) -> None:
    write_store(tmp_path / "toy", metric="head_acc", condition="")
    frame = ResultsStore(tmp_path / "toy").read()
    spec = grid_spec(
        columns={"{modality} at {severity:g}": {"modality": ["image", "fused"], "severity": 1.0}}
    )
    text = grid_table(frame, spec, {"data": "shapes"})
    assert text.splitlines()[2] == "|  | fused at 1 |"


def study_file(tmp_path: Path, tables: str) -> Path:
    path = tmp_path / "toy.yaml"
    path.write_text(
        f"name: toy\nstore: {tmp_path / 'results' / 'toy'}\n"
        "methods: {clip: [], supervised: []}\n"
        "scenarios:\n  missing:\n    overrides: ['scenario=[missing]']\n"
        "    severity: scenario.missing.rate\n    values: [0.0, 0.5, 1.0]\n" + tables
    )
    return path


def test_tables_command_prints_and_checks_a_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_store(tmp_path / "results" / "toy")
    study = study_file(tmp_path, "tables:\n  - {kind: curve, modalities: [fused]}\n")
    doc = tmp_path / "study.md"
    doc.write_text("nothing here\n")
    assert main(["tables", str(study), "--check", str(doc)]) == 1
    assert "0/1 tables" in capsys.readouterr().out
    figures = tmp_path / "figures"
    assert (
        main(["tables", str(study), "--out", str(tmp_path / "out.md"), "--figures", str(figures)])
        == 0
    )
    assert [p.name for p in figures.iterdir()] == ["toy_missing.png"]
    printed = capsys.readouterr().out
    assert (tmp_path / "out.md").read_text().rstrip("\n") == printed.rstrip("\n")
    doc.write_text(printed)
    assert main(["tables", str(study), "--check", str(doc)]) == 0
    assert "1/1 tables" in capsys.readouterr().out


def test_tables_command_names_a_bad_spec_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = study_file(tmp_path, "tables:\n  - {kind: pie}\n")
    assert main(["tables", str(study)]) == 2
    out = capsys.readouterr().out
    assert "kind 'pie' is unknown" in out and "Traceback" not in out
    study = study_file(tmp_path, "tables:\n  - {kind: grid, colums: {}}\n")
    with pytest.raises(ConfigError, match="colums"):
        load_tables(study)


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_study_table_spec_validates_against_its_grid(path: Path) -> None:
    """Sweeps still read the file, and every method / column a table names exists."""
    load_study(path)
    assert validate_tables(path) == []


def test_validation_names_a_method_not_in_the_study(tmp_path: Path) -> None:
    study = study_file(
        tmp_path,
        "tables:\n  - kind: grid\n    rows: {a: {method: moco}}\n"
        "    columns: {b: {colour: red, scenario: hard}}\n    baseline: a\n",
    )
    problems = validate_tables(study)
    assert any("moco" in p for p in problems) and any("colour" in p for p in problems)
    assert any("scenario 'hard'" in p for p in problems)


def test_grid_table_holm_and_uncorrected_welch_on_an_offset_table() -> None:
    """Moved from the repair tables: the same difference at two severities, Holm over both."""
    values = {"base": [0.50, 0.55, 0.52, 0.58, 0.51], "x": [0.56, 0.60, 0.55, 0.66, 0.55]}
    frame = pd.DataFrame(
        [
            {"method": m, "metric": "acc", "modality": "fused", "condition": "", "data": "d"}
            | {"severity": sev, "seed": seed, "value": v + sev / 10}
            for m, vs in values.items()
            for sev in (0.0, 1.0)
            for seed, v in enumerate(vs)
        ]
    )
    rows = {"base": {"method": "base"}, "x": {"method": "x"}}
    spec = grid_spec(where={"metric": "acc"}, rows=rows, baseline="base")
    raw = stats.ttest_rel(values["x"], values["base"]).pvalue  # the same at both severities
    adjusted = multipletests([raw, raw], method="holm")[1]
    assert f"p_adj={adjusted[0]:.3f}" in cells_of(grid_table(frame, spec, {"data": "d"}), "x")[1]
    p = stats.ttest_ind(values["x"], values["base"], equal_var=False).pvalue
    welch = grid_table(frame, spec, {"data": "d"}, test="welch", correction="none")
    assert f" p={p:.3f}" in cells_of(welch, "x")[2]


def test_counterfactual_table_cells_and_agreement_with_the_truth() -> None:
    """Shares are mean ± std over seeds; 'top agrees' counts seeds whose top Shapley is right."""
    from modalab.experiments.tables import counterfactual_table

    shares = {"image": [0.9, 0.7, 0.4], "text": [0.1, 0.3, 0.6]}  # seed 2 picks text
    rows = []
    for modality, values in shares.items():
        for seed, v in enumerate(values):
            base = {"data": "shapes_unique", "method": "clip", "seed": seed, "modality": modality}
            rows += [
                base | {"metric": "shapley", "value": v / 2},
                base | {"metric": "shapley_share", "value": v},
                base | {"metric": "truth_share", "value": float(modality == "image")},
                base | {"metric": "truth_dominant", "value": float(modality == "image")},
            ]
    text = counterfactual_table(pd.DataFrame(rows))
    first = cells_of(text, "shapes_unique")
    image = shares["image"]
    assert first[4:7] == [
        "image",
        "1.00",
        f"{np.mean(image):.3f} ± {np.std(image, ddof=1):.3f}",
    ]
    assert first[-1] == "2/3 (image)"
    second = next(x for x in text.splitlines() if x.startswith("|  |  |"))
    assert "0.00" in second and "text" in second


@pytest.mark.parametrize("test", ["paired_t", "welch"])
def test_claims_are_checked_against_the_corrected_cells(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], test: str
) -> None:
    """A sentence's claim holds only if its cell's Holm-corrected test agrees (scipy)."""
    write_store(tmp_path / "results" / "toy")
    study = study_file(tmp_path, "tables:\n  - {kind: curve, modalities: [fused]}\n")
    c, s = VALUES["clip"], VALUES["supervised"]
    drops = np.subtract(c[0.0], c[1.0]), np.subtract(s[0.0], s[1.0])
    pairs = [(c[v], s[v]) for v in (0.0, 0.5, 1.0)] + [drops]
    if test == "welch":
        raw = [stats.ttest_ind(a, b, equal_var=False).pvalue for a, b in pairs]
    else:
        raw = [stats.ttest_rel(a, b).pvalue for a, b in pairs]
    adjusted = dict(zip(["0", "0.5", "1", "drop"], multipletests(raw, method="holm")[1]))
    truth = {col: "significant" if p < 0.05 else "not significant" for col, p in adjusted.items()}
    if test == "welch":  # the case that exercises a tested cell without a star
        assert "not significant" in truth.values()
    wrong = {"significant": "not significant", "not significant": "significant"}
    main = partial(cli_main, extra=["--test", test])
    assert main(["tables", str(study), "--out", str(tmp_path / "t.md")]) == 0
    tables = (tmp_path / "t.md").read_text()
    capsys.readouterr()

    def claim(column: str, verdict: str, value: str = "") -> str:
        tail = f" :: {value}" if value else ""
        return f"<!-- claim: toy / missing / fused :: clip :: {column} :: {verdict}{tail} -->"

    mean_hard = f"{np.mean(c[1.0]):.2f}"
    right = [claim(col, verdict) for col, verdict in truth.items()]
    right.append(claim("1", truth["1"], mean_hard))
    right.append(claim("0", "untested").replace("clip", "supervised"))
    doc = tmp_path / "study.md"
    doc.write_text(tables + "\nClaims: " + " ".join(right) + "\n")
    assert main(["tables", str(study), "--check", str(doc)]) == 0
    assert f"{len(right)}/{len(right)} claims" in capsys.readouterr().out
    for bad, why in [
        (claim("1", wrong[truth["1"]]), "says"),
        (claim("1", truth["1"], "0.99"), "says 0.99"),
        (claim("3", "significant"), "no such cell"),
        ("<!-- claim: nowhere :: clip :: 1 :: significant -->", "no such table"),
        ("<!-- claim: toy / missing / fused :: clip :: 1 :: maybe -->", "does not parse"),
    ]:
        doc.write_text(tables + "\n" + bad + "\n")
        assert main(["tables", str(study), "--check", str(doc)]) == 1
        out = capsys.readouterr().out
        assert why in out and "0/1 claims" in out and "Traceback" not in out


def cli_main(argv: list[str], extra: list[str]) -> int:
    return main([*argv, *extra])


def test_grid_table_gap_closed_per_seed_against_hand_computed_fractions(tmp_path: Path) -> None:
    # Planted transfer: a student (image) with a text teacher, a floor (CLIP's image probe)
    # and the teacher's own probe as ceiling, per label fraction and seed.
    floor = {0.01: [0.40, 0.42, 0.45, 0.41], 0.1: [0.60, 0.62, 0.61, 0.63]}
    ceiling = {0.01: [0.90, 0.91, 0.93, 0.90], 0.1: [0.95, 0.94, 0.96, 0.95]}
    student = {0.01: [0.60, 0.70, 0.62, 0.41], 0.1: [0.80, 0.85, 0.83, 0.79]}
    planted = {("clip", "image"): floor, ("distill", "text"): ceiling}
    planted[("distill", "image")] = student
    append_planted(
        ResultsStore(tmp_path / "kt"),
        planted,
        study="kt",
        scenario="few_labels",
        metric="linear_probe_acc",
        condition="labels=1",
    )
    spec = TableSpec(
        kind="grid",
        title="Gap closed on {data}",
        where={"metric": "linear_probe_acc", "condition": "labels=1"},
        rows={
            "clip": {"method": "clip", "modality": "image"},
            "distill": {"method": "distill", "modality": "image"},
        },
        columns={"{percent:g}% labels": {"severity": "*"}},
        baseline="clip",
        gap={
            "floor": {"method": "clip", "modality": "image"},
            "ceiling": {"method": "distill", "modality": "text"},
        },
    )
    text = grid_table(ResultsStore(tmp_path / "kt").read(), spec, {"data": "shapes"})
    fractions = {
        v: (np.array(student[v]) - floor[v]) / (np.array(ceiling[v]) - floor[v]) for v in floor
    }
    raw = [stats.ttest_rel(fractions[v], np.zeros(4)).pvalue for v in (0.01, 0.1)]
    adjusted = multipletests(raw, method="holm")[1]
    row = cells_of(text, "distill")
    for column, (v, p) in enumerate(zip((0.01, 0.1), adjusted)):
        mean, std = fractions[v].mean(), fractions[v].std(ddof=1)
        assert row[1 + column] == f"{mean:.3f} ± {std:.3f} p_adj={p:.3f} {stars(p)}".rstrip()
    # The floor closes none of its own gap: 0 in every seed (a zero-variance cell, marked).
    assert cells_of(text, "clip")[1].startswith("0.000 ± 0.000")
    assert "Fraction of the gap closed" in text and "(cell − floor) / (ceiling − floor)" in text


def test_a_gap_needs_floor_and_ceiling_in_a_grid(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: x\nmethods: {a: []}\ntables:\n  - kind: grid\n    rows: {a: {method: a}}\n"
        "    columns: {all: {}}\n    baseline: a\n    gap: {floor: {method: a}}\n"
    )
    with pytest.raises(ConfigError, match="gap takes exactly floor: and ceiling:"):
        load_tables(path)


def test_head_hidden_belongs_to_a_counterfactual_table(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    table = "{kind: counterfactual, head_hidden: 64}"
    path.write_text(f"name: x\nmethods: {{a: []}}\ntables:\n  - {table}\n")
    assert load_tables(path)[0].head_hidden == 64
    for bad in ("{kind: curve, head_hidden: 64}", "{kind: counterfactual, head_hidden: -1}"):
        path.write_text(f"name: x\nmethods: {{a: []}}\ntables:\n  - {bad}\n")
        with pytest.raises(ConfigError, match="head_hidden="):
            load_tables(path)


@pytest.mark.slow  # the fast tier is at its 3-minute budget
def test_a_study_with_two_datasets_gets_one_curve_table_per_dataset(tmp_path: Path) -> None:
    """Two data labels (e.g. shapes with and without text) are never pooled as seeds."""
    from modalab.experiments.tables import study_tables

    store = ResultsStore(tmp_path / "results" / "toy")
    shifted = {m: {s: [v - 0.3 for v in vs] for s, vs in c.items()} for m, c in VALUES.items()}
    for data, values in (("with_text", VALUES), ("no_text", shifted)):
        rows = {(f"{m}", "fused"): c for m, c in values.items()}
        planted = ResultsStore(tmp_path / data)
        append_planted(
            planted,
            rows,
            study="toy",
            scenario="missing",
            severity_key="scenario.missing.rate",
            metric="linear_probe_acc",
            condition="labels=1",
        )
        frame = planted.read().assign(data=data)
        for run_id, part in frame.groupby("run_id"):
            store.append(
                f"{data}-{run_id}", part.assign(run_id=f"{data}-{run_id}").to_dict("records")
            )
    study = study_file(tmp_path, "tables:\n  - {kind: curve, modalities: [fused]}\n")
    text = study.read_text().replace(
        "methods:", "datasets: {with_text: [data=shapes], no_text: [data=shapes]}\nmethods:"
    )
    study.write_text(text)
    out = study_tables(study, figures=tmp_path / "figures")
    assert "**toy / with_text / missing**" in out and "**toy / no_text / missing**" in out
    tables = [t for t in out.split("\n\n") if t.startswith("|")]
    assert len(tables) == 2
    for table, values in zip(tables, (VALUES, shifted)):
        for method, curve in values.items():  # each dataset's own 3 seeds, not 6 pooled
            for column, severity in ((1, 0.0), (3, 1.0)):
                vs = curve[severity]
                cell = f"{np.mean(vs):.3f} ± {np.std(vs, ddof=1):.3f}"
                assert cells_of(table, f"{method} (n=3)")[column].startswith(cell), method
    figures = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figures == ["toy_no_text_missing.png", "toy_with_text_missing.png"]
