"""Results tables of the repair methods (docs/repair.md), read from the sweeps' results stores.

Each table compares the methods of one ``studies/repair_*.yaml`` study on one dataset: every
cell is the mean ± standard deviation over seeds of one metric, ``p`` the test of the method's
per-seed values against its baseline's at the same severity
(:func:`modalab.evaluation.statistics.compare_seeds`: by default a paired t-test over the
seeds both share, Welch's test otherwise; ``--test``) and ``p_adj`` that p-value corrected
over the table's cells (Holm–Bonferroni by default; ``--correction bh|none``); ``n/a`` for
untestable cells. ``†`` marks zero variance across seeds. Nothing is trained here: run the
studies first::

    MODALAB_DATA=/work/shared/data modalab sweep studies/repair_distill.yaml   # ... each study
    python scripts/repair_tables.py                      # reads results/repair_<study>
    python scripts/repair_tables.py --smoke              # reads results/repair_<study>_smoke
    python scripts/repair_tables.py --results DIR --out tables.md --studies missing imbalance

A study without a store, or a dataset without rows, is reported as missing.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from modalab.evaluation import statistics
from modalab.experiments.curves import robustness_curves, robustness_scores
from modalab.experiments.store import ResultsStore

STUDIES = ("distill", "missing", "imbalance", "misaligned", "wrong_labels")
#: The poor (student) modality of the distillation study per dataset label.
POOR = {"shapes": "image", "avmnist": "audio"}
Spec = Mapping[str, object]


@dataclass
class Table:
    """Rows × columns of cells; a cell is the merge of its row's and its column's filters.

    Attributes:
        title: Heading.
        rows: Row label → filter (``method``, ``metric``, ``modality``, ``condition``,
            ``severity``; any subset).
        cols: Column label → filter.
        baseline: Row label → the row it is tested against.
        notes: Lines printed under the table.
    """

    title: str
    rows: dict[str, Spec]
    cols: dict[str, Spec]
    baseline: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def seed_values(frame: pd.DataFrame, spec: Spec) -> np.ndarray:
    """Per-seed values of the rows matching ``spec`` (one value per seed)."""
    rows = frame
    for key, value in spec.items():
        if key == "severity":
            rows = rows[np.isclose(rows["severity"].astype(float), float(value))]  # type: ignore[arg-type]
        else:
            rows = rows[rows[key] == value]
    if rows.duplicated(["seed"]).any():
        raise ValueError(f"Several rows per seed match {dict(spec)}: the filter is ambiguous.")
    return rows.sort_values("seed")["value"].to_numpy(dtype=float)


def welch_p(values: np.ndarray, base: np.ndarray) -> float:
    """Two-sided Welch t-test p-value (:func:`modalab.evaluation.statistics.welch_test`)."""
    return statistics.welch_test(values, base).p_value


def seed_test(frame: pd.DataFrame, spec: Spec, base_spec: Spec, test: str) -> float:
    """p-value of the cell ``spec`` against ``base_spec``, paired by seed where both share seeds.

    ``test`` is that of :func:`modalab.evaluation.statistics.compare_seeds` (``auto``:
    paired t over shared seeds, Welch otherwise).
    """

    def by_seed(s: Spec) -> dict[int, float]:
        rows = frame
        for key, value in s.items():
            if key == "severity":
                rows = rows[np.isclose(rows["severity"].astype(float), float(value))]  # type: ignore[arg-type]
            else:
                rows = rows[rows[key] == value]
        rows = rows.dropna(subset=["value"])
        return dict(zip(rows["seed"].astype(int), rows["value"].astype(float)))

    a, b = by_seed(spec), by_seed(base_spec)
    if not a or not b:
        return math.nan
    return statistics.compare_seeds(a, b, test).p_value  # type: ignore[arg-type]


def cell(values: np.ndarray, p: float | None, p_adjusted: float = math.nan) -> str:
    """``mean ± std`` (and ``p``, corrected when given) of per-seed values; marks degenerate."""
    values = values[~np.isnan(values)]
    stats_ = statistics.CellStats.of(values)
    text = statistics.format_cell(stats_, stars=False)
    if text == "—" or p is None:
        return text
    marks = f" {stats_.marks}" if stats_.marks else ""
    text = text.removesuffix(marks)
    if not math.isnan(p_adjusted):
        return text + f" (p={p:.3f}, p_adj={p_adjusted:.3f})" + marks
    return text + (f" (p={p:.3f})" if not math.isnan(p) else " (p=n/a)") + marks


def render(
    frame: pd.DataFrame,
    table: Table,
    test: str = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """The table as Markdown; the p-values of its cells are corrected together."""
    lines = [f"#### {table.title}", ""]
    lines.append("| | " + " | ".join(table.cols) + " |")
    lines.append("|---" * (len(table.cols) + 1) + "|")
    grid: list[list[tuple[np.ndarray, float | None]]] = []
    for label, row in table.rows.items():
        cells: list[tuple[np.ndarray, float | None]] = []
        base_label = table.baseline.get(label)
        for col in table.cols.values():
            values = seed_values(frame, {**row, **col})
            p = None
            if base_label is not None and base_label != label:
                p = seed_test(frame, {**row, **col}, {**table.rows[base_label], **col}, test)
            cells.append((values, p))
        grid.append(cells)
    raw = [math.nan if p is None else p for cells in grid for _, p in cells]
    adjusted = iter(statistics.adjust_p_values(raw, correction))
    for label, cells in zip(table.rows, grid):
        texts = []
        for values, p in cells:
            a = float(next(adjusted))
            texts.append(cell(values, p, a if correction != "none" else math.nan))
        lines.append(f"| {label} | " + " | ".join(texts) + " |")
    seeds = sorted(frame["seed"].unique())
    tests = {"auto": "paired t-test over shared seeds (Welch otherwise)", "welch": "Welch's t-test"}
    named = tests.get(test, test)
    fix = {"holm": "Holm", "bh": "Benjamini–Hochberg", "none": "no"}[correction]
    lines += [
        "",
        f"Mean ± std over seeds {[int(s) for s in seeds]}; "
        f"p: {named} against the baseline row; p_adj: {fix} correction over the table's "
        f"p-values. {statistics.DEGENERATE_LEGEND}",
    ]
    lines += table.notes
    return "\n".join(lines) + "\n"


def pct(value: float) -> str:
    return f"{value:g}"


def severities(frame: pd.DataFrame) -> list[float]:
    return sorted(float(s) for s in frame["severity"].unique())


# ------------------------------------------------------------------ the five studies
def distill_tables(frame: pd.DataFrame, data: str) -> list[Table]:
    poor = POOR.get(data, "")
    cols = {f"{poor} probe, {pct(100 * s)}% labels": {"severity": s} for s in severities(frame)}
    methods = {
        "supervised on the few labels (no transfer)": "supervised",
        "CLIP, no teacher": "clip",
        "distill: cosine to teacher": "distill_cosine",
        "distill: soft labels (KD, T=4)": "distill_kd",
        "distill: contrastive to frozen teacher (LiT)": "distill_lit",
    }
    rows: dict[str, Spec] = {
        label: {
            "method": m,
            "metric": "linear_probe_acc",
            "modality": poor,
            "condition": "labels=1",
        }
        for label, m in methods.items()
    }
    out = []
    for versus, name in (
        ("supervised", "supervised on the few labels (no transfer)"),
        ("clip", "CLIP, no teacher"),
    ):
        out.append(
            Table(
                f"Distillation on {data}: {poor}-only linear probe accuracy, p vs {versus}",
                rows,
                cols,
                baseline={label: name for label in rows},
            )
        )
    return out


def missing_tables(frame: pd.DataFrame, data: str) -> list[Table]:
    cols = {f"missing rate {pct(s)}": {"severity": s} for s in severities(frame)}
    labels = {
        "no dropout (baseline)": "baseline",
        "modality dropout 0.5": "dropout",
        "dropout + learned absent embedding": "dropout_absent",
        "dropout + imputation": "dropout_impute",
    }
    rows = {
        label: {"method": m, "metric": "head_acc", "modality": "fused", "condition": ""}
        for label, m in labels.items()
    }
    curves = robustness_curves(frame, metric="head_acc", modality="fused")
    scores = robustness_scores(curves, baseline="baseline").set_index("method")
    notes = [
        "Area under each mean curve (normalised; robustness_scores): "
        + ", ".join(f"{m} {scores.loc[m, 'auc']:.3f}" for m in labels.values() if m in scores.index)
        + "."
    ]
    return [
        Table(
            f"Missing modalities on {data}: fused head accuracy vs test-time missing rate",
            rows,
            cols,
            baseline={label: "no dropout (baseline)" for label in rows},
            notes=notes,
        )
    ]


def modalities_of(frame: pd.DataFrame) -> list[str]:
    found = frame[(frame["metric"] == "linear_probe_acc")]["modality"].unique()
    return [m for m in found if m != "fused"]


def imbalance_tables(frame: pd.DataFrame, data: str) -> list[Table]:
    mods = modalities_of(frame)
    cols: dict[str, Spec] = {"head, fused": {"metric": "head_acc", "modality": "fused"}}
    cols |= {f"head, {m} share": {"metric": "head_acc", "modality": m} for m in mods}
    cols |= {
        f"{m} encoder probe": {"metric": "linear_probe_acc", "modality": m, "condition": "labels=1"}
        for m in mods
    }
    labels = {
        "joint training (baseline)": "joint",
        "OGM-GE (alpha=0.5)": "ogm_ge",
        "unimodal aux. losses (fixed)": "aux_fixed",
        "gradient blending (OGB)": "grad_blend",
    }
    # Probe columns carry their own condition; head columns have none.
    rows: dict[str, Spec] = {label: {"method": m} for label, m in labels.items()}
    cols = {k: {"condition": "", **v} for k, v in cols.items()}
    return [
        Table(
            f"Imbalance on {data}: per-modality accuracy",
            rows,
            cols,
            baseline={label: "joint training (baseline)" for label in rows},
        )
    ]


def misaligned_tables(frame: pd.DataFrame, data: str) -> list[Table]:
    mods = modalities_of(frame)
    cols: dict[str, Spec] = {
        f"{m} probe (10% labels)": {
            "metric": "linear_probe_acc",
            "modality": m,
            "condition": "labels=0.1",
        }
        for m in mods
    }
    if len(mods) == 2:
        cols[f"R@1 {mods[0]}->{mods[1]}"] = {
            "metric": "recall@1",
            "modality": f"{mods[0]}->{mods[1]}",
            "condition": "",
        }
    flagged = frame[frame["metric"] == "flag_precision"]["modality"].unique()
    pair = str(flagged[0]) if len(flagged) else "|".join(mods)
    cols["flag precision of broken pairs"] = {
        "metric": "flag_precision",
        "modality": pair,
        "condition": "train pairs",
    }
    labels = {
        "InfoNCE (baseline)": "infonce",
        "RINCE q=1": "rince_q1",
        "InfoNCE + small-loss filter (keep 0.5)": "small_loss",
    }
    out = []
    for s in severities(frame):
        rows = {label: {"method": m, "severity": s} for label, m in labels.items()}
        out.append(
            Table(
                f"Misaligned pairs on {data}: {pct(100 * s)}% of training pairs broken",
                rows,
                cols,
                baseline={label: "InfoNCE (baseline)" for label in rows},
                notes=["Flag precision: chance is the broken fraction (— without broken pairs)."],
            )
        )
    return out


def wrong_labels_tables(frame: pd.DataFrame, data: str) -> list[Table]:
    cols = {f"{pct(100 * s)}% wrong labels": {"severity": s} for s in severities(frame)}
    e2e = {"method": "e2e_ce", "metric": "head_acc", "modality": "fused", "condition": ""}
    probe = {"method": "clip_frozen", "metric": "noisy_probe_acc", "modality": "fused"}
    forget = "loss=ce,forget=0.4"
    rows: dict[str, Spec] = {
        "end-to-end CE (baseline)": e2e,
        "end-to-end GCE": {**e2e, "method": "e2e_gce"},
        "end-to-end SCE": {**e2e, "method": "e2e_sce"},
        "frozen CLIP + CE probe": {**probe, "condition": "loss=ce"},
        "frozen CLIP + GCE probe": {**probe, "condition": "loss=gce"},
        "frozen CLIP + SCE probe": {**probe, "condition": "loss=sce"},
        "frozen CLIP + small-loss selection (forget 0.4) + CE": {**probe, "condition": forget},
        "  flagged-sample precision": {
            **probe,
            "metric": "flag_precision",
            "condition": forget,
        },
        "  flagged-sample recall": {**probe, "metric": "flag_recall", "condition": forget},
    }
    baseline = {label: "end-to-end CE (baseline)" for label in list(rows)[:7]}
    return [
        Table(
            f"Wrong labels on {data}: test accuracy (clean test labels)",
            rows,
            cols,
            baseline=baseline,
            notes=[
                "Flagged precision/recall: the 40% largest-loss training samples of a warm-up "
                "probe against the true noise mask (chance precision = the noise rate; at 0% "
                "noise every flagged sample is clean, so precision is 0)."
            ],
        )
    ]


BUILDERS = {
    "distill": distill_tables,
    "missing": missing_tables,
    "imbalance": imbalance_tables,
    "misaligned": misaligned_tables,
    "wrong_labels": wrong_labels_tables,
}


def study_markdown(
    root: Path,
    study: str,
    smoke: bool,
    test: str = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """All tables of one study, per dataset of its store."""
    store = root / (f"repair_{study}" + ("_smoke" if smoke else ""))
    frame = ResultsStore(store).read()
    if frame.empty:
        return f"### repair_{study}\n\nNo rows in {store}: run the study first.\n"
    parts = [f"### repair_{study}\n"]
    for data in sorted(frame["data"].unique()):
        rows = frame[frame["data"] == data]
        for table in BUILDERS[study](rows, data):
            parts.append(render(rows, table, test, correction))
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--results", default="results", help="folder of the study stores")
    parser.add_argument("--smoke", action="store_true", help="read the <study>_smoke stores")
    parser.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES))
    parser.add_argument("--out", default=None, help="also write the Markdown to this file")
    parser.add_argument("--test", default="auto", choices=["auto", "paired_t", "wilcoxon", "welch"])
    parser.add_argument("--correction", default="holm", choices=["holm", "bh", "none"])
    args = parser.parse_args(argv)
    text = "\n".join(
        study_markdown(Path(args.results), s, args.smoke, args.test, args.correction)
        for s in args.studies
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
