"""The tables and figures of docs/study.md, regenerated from the results stores.

Every table of docs/study.md is printed by this script from the stores that ``modalab sweep
studies/<study>.yaml`` (and ``scripts/counterfactual_study.py``) wrote; nothing is typed by
hand. Statistics:

- cells are mean ± sample std (ddof=1) over seeds, ``n`` seeds, formatted by
  :func:`modalab.evaluation.statistics.format_cell`;
- significance markers compare each method with the baseline (``supervised``, or the first
  variant of a repair study) at the same severity (:mod:`modalab.evaluation.statistics`):
  by default a paired t-test over the seeds both share (Welch's test when they share none;
  ``--test``), and the p-values of one table are corrected together (Holm–Bonferroni by
  default, ``--correction bh|none``) before ``*`` p < 0.05, ``**`` p < 0.01, ``***``
  p < 0.001 are set; ``†`` marks zero variance across seeds and ``‡`` a collapsed probe;
  the first edition of docs/study.md used ``--test welch --correction none``;
- ``drop`` is clean minus hardest severity per seed (same seed, same data), tested like the
  other cells against the baseline's drops;
- ``AUC`` (normalised area under the curve over the severity axis) and effective robustness
  against the baseline are those of ``modalab.experiments.curves.robustness_scores``.

Usage::

    python scripts/study_tables.py                        # every section, Markdown to stdout
    python scripts/study_tables.py missing_modality       # one section
    python scripts/study_tables.py --figures docs/study   # also write the PNG figures
"""

from __future__ import annotations

import argparse
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml

from modalab.evaluation import statistics
from modalab.experiments.curves import robustness_curves, robustness_scores
from modalab.experiments.report import markdown_table, summarize
from modalab.experiments.store import ResultsStore

warnings.filterwarnings("ignore", category=RuntimeWarning)

METRIC = "linear_probe_acc"
CONDITION = "labels=1"
#: Scenario studies → modalities whose probe curves are tabulated.
SCENARIO_STUDIES: dict[str, list[str]] = {
    "missing_modality": ["fused"],
    "unbalanced_modalities": ["fused", "image", "text"],
    "noisy_modality": ["fused", "image"],
    "misaligned_pairs": ["fused", "image", "text"],
    "label_scarcity": ["fused"],
    "label_noise": ["fused"],
}
#: Baseline of each repair study when its study file cannot be read (its first method).
REPAIR_BASELINES = {
    "repair_imbalance": "joint",
    "repair_missing": "baseline",
    "repair_misaligned": "infonce",
    "repair_wrong_labels": "e2e_ce",
    "repair_distill": "supervised",
}
REPAIR_METRICS = [
    "head_acc",
    "linear_probe_acc",
    "noisy_probe_acc",
    "flag_precision",
    "flag_recall",
]
REPAIR_STUDIES = [
    "repair_imbalance",
    "repair_missing",
    "repair_misaligned",
    "repair_wrong_labels",
    "repair_distill",
]


def fmt(mean: float, std: float, marker: str = "") -> str:
    """``mean ± std marker`` (``—`` for no value), via :func:`statistics.format_cell`."""
    n = 0 if math.isnan(mean) else 2
    text = statistics.format_cell(statistics.CellStats(mean, std, n), stars=False)
    return f"{text} {marker}".rstrip() if n else text


def welch(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Welch t-test p-value (:func:`statistics.welch_test`)."""
    return statistics.welch_test(a, b).p_value


def read(store: Path) -> pd.DataFrame:
    """The rows of a store (empty frame when the folder does not exist)."""
    return ResultsStore(store).read()


def curve_table(
    frame: pd.DataFrame,
    modality: str,
    baseline: str = "supervised",
    metric: str = METRIC,
    order: Sequence[str] = (),
    test: str = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """Methods × severities (mean ± std, marker vs baseline), drop, AUC, eff. robustness.

    Each cell's test against the baseline is :func:`modalab.evaluation.statistics.compare_seeds`
    (``auto``: paired t over shared seeds, else Welch); the p-values of every cell of the
    table (severities and drops) form one family, corrected by ``correction`` before the
    stars are set. Degenerate cells carry the marks of ``degenerate_marks`` (collapse needs
    ``linear_probe_majority_rate`` rows, stored with ``eval.record_samples=true``), and with
    ``linear_probe_n_test`` rows each accuracy cell gets a 95 % bootstrap interval over the
    test samples of its seeds (``[lo, hi]``).
    """
    rows = frame[(frame.metric == metric) & (frame.modality == modality)]
    rows = rows[rows.condition == CONDITION] if metric == METRIC else rows
    curves = robustness_curves(rows, metric, modality)
    scores = robustness_scores(curves, baseline=baseline).set_index("method")
    severities = list(dict.fromkeys(curves.severity))
    found = list(dict.fromkeys(curves.method))
    methods = [m for m in order if m in found] + [m for m in found if m not in order]
    per_seed = rows.groupby(["method", "severity", "seed"]).value.mean()
    majority = (
        frame[(frame.metric == "linear_probe_majority_rate") & (frame.modality == modality)]
        .groupby("severity")
        .value.mean()
    )
    sizes = (
        frame[
            (frame.metric == "linear_probe_n_test")
            & (frame.modality == modality)
            & (frame.condition == CONDITION)
        ]
        .groupby(["method", "severity", "seed"])
        .value.first()
    )
    clean, hardest = severities[0], severities[-1]

    def interval(method: str, severity: float) -> statistics.Interval | None:
        """Bootstrap CI over test samples (needs ``eval.record_samples=true`` rows)."""
        values = seeds_of(method, severity)
        if metric != METRIC or not len(values):
            return None
        keys = [(method, severity, seed) for seed in values.index]
        if not all(k in sizes.index for k in keys):
            return None
        runs = [
            statistics.correctness_from_accuracy(float(values[k[2]]), int(sizes[k])) for k in keys
        ]
        return statistics.bootstrap_ci(runs, n_resamples=1000, seed=0)

    def seeds_of(method: str, severity: float) -> pd.Series:
        if (method, severity) not in per_seed.index.droplevel(2):
            return pd.Series(dtype=float)
        return per_seed.loc[(method, severity)]

    def drops(method: str) -> pd.Series:
        return (seeds_of(method, clean) - seeds_of(method, hardest)).dropna()

    cells: dict[tuple[str, str], statistics.CellStats] = {}
    for method in methods:
        for s in [*severities, "drop"]:
            values = drops(method) if s == "drop" else seeds_of(method, s)
            rate = None if s == "drop" or s not in majority.index else float(majority.loc[s])
            cell = statistics.CellStats.of(values.to_numpy(float), majority_rate=rate)
            cell.ci = None if s == "drop" else interval(method, float(s))
            base = drops(baseline) if s == "drop" else seeds_of(baseline, s)
            if method != baseline and len(values) and len(base):
                cell.p_value = statistics.compare_seeds(
                    values.to_dict(),
                    base.to_dict(),
                    test,  # type: ignore[arg-type]
                ).p_value
            cells[(method, str(s))] = cell
    keys = list(cells)
    adjusted = statistics.adjust_p_values([cells[k].p_value for k in keys], correction)
    for key, p in zip(keys, adjusted):
        cells[key].p_adjusted = float(p) if correction != "none" else math.nan

    header = ["method", *(f"{s:g}" for s in severities), "drop", "AUC", "eff. rob."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in methods:
        row = [statistics.format_cell(cells[(method, str(s))]) for s in [*severities, "drop"]]
        sc = scores.loc[method]
        eff = sc["effective_robustness"]
        row += [
            f"{sc['auc']:.3f}",
            "—" if method == baseline or math.isnan(eff) else f"{eff:+.3f}",
        ]
        n = int(per_seed.loc[method].groupby(level=0).size().min())
        lines.append(f"| {method} (n={n}) | " + " | ".join(row) + " |")
    return "\n".join(lines)


def scenario_section(
    name: str,
    results: Path,
    figures: Path | None,
    studies: Path,
    test: str = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    frame = read(results / name)
    if frame.empty:
        return f"### {name}\n\n(no rows in {results / name}: `modalab sweep studies/{name}.yaml`)\n"
    out = [f"### {name}\n"]
    order = study_methods(name, studies)
    scenarios = study_keys(name, studies, "scenarios")
    found = list(dict.fromkeys(frame.scenario))
    for scenario in [s for s in scenarios if s in found] + [s for s in found if s not in scenarios]:
        part = frame[frame.scenario == scenario]
        key = part.severity_key.iloc[0]
        for modality in SCENARIO_STUDIES[name]:
            out.append(
                f"**{name} / {scenario}** (`{key}`), linear probe on `{modality}`, "
                f"test split; markers: {caption(test, correction)} vs supervised\n"
            )
            table = curve_table(part, modality, order=order, test=test, correction=correction)
            out.append(table + "\n")
        if figures is not None:
            curve_figure(part, SCENARIO_STUDIES[name], figures / f"{name}_{scenario}.png")
    return "\n".join(out)


def caption(test: str, correction: str) -> str:
    """How the markers of a table were computed, in words."""
    tests = {
        "auto": "paired t-test over shared seeds (Welch otherwise)",
        "paired_t": "paired t-test",
        "wilcoxon": "Wilcoxon signed-rank test",
        "welch": "Welch's t-test",
        "paired": "paired t-test",
    }
    corrected = {
        "holm": "Holm-corrected",
        "bh": "Benjamini–Hochberg-corrected",
        "none": "uncorrected",
    }
    return (
        f"{tests[test]}, {corrected[correction]} within the table; {statistics.DEGENERATE_LEGEND}"
    )


def curve_figure(frame: pd.DataFrame, modalities: Sequence[str], path: Path) -> None:
    """Probe accuracy against severity per method, one panel per modality (mean ± 1 std)."""
    key = frame.severity_key.iloc[0]
    fig, axes = plt.subplots(1, len(modalities), figsize=(2.6 * len(modalities), 2.3))
    for ax, modality in zip(np.atleast_1d(axes), modalities):
        rows = frame[(frame.metric == METRIC) & (frame.modality == modality)]
        curves = robustness_curves(rows[rows.condition == CONDITION], METRIC, modality)
        for method, c in curves.groupby("method", sort=False):
            x = np.arange(len(c))
            ax.plot(x, c["mean"], marker="o", ms=3, label=method)
            ax.fill_between(x, c["mean"] - c["std"], c["mean"] + c["std"], alpha=0.2)
            ax.set_xticks(x, [f"{s:g}" for s in c.severity])
        ax.set_title(modality, fontsize=8)
        ax.set_xlabel(key.split(".")[-1] + " (clean → hard)", fontsize=7)
        ax.tick_params(labelsize=7)
    np.atleast_1d(axes)[0].set_ylabel("linear probe acc.", fontsize=7)
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def in_study_order(frame: pd.DataFrame, studies: Path) -> pd.DataFrame:
    """Rows sorted by the counterfactual study's dataset and method order (stable)."""
    if frame.empty:
        return frame
    order = {
        "data": study_keys("counterfactual", studies, "datasets"),
        "method": study_methods("counterfactual", studies),
    }
    keys = {
        c: frame[c].map({v: i for i, v in enumerate(o)}).fillna(len(o)) for c, o in order.items()
    }
    return (
        frame.assign(_d=keys["data"], _m=keys["method"])
        .sort_values(["_d", "_m"], kind="stable")
        .drop(columns=["_d", "_m"])
    )


def counterfactual_section(results: Path, figures: Path | None, studies: Path) -> str:
    frame = in_study_order(read(results / "counterfactual_analysis"), studies)
    if frame.empty:
        return (
            "### counterfactual\n\n(no rows: run `modalab sweep studies/counterfactual.yaml` "
            "and `python scripts/counterfactual_study.py studies/counterfactual.yaml`)\n"
        )
    per_seed = frame.groupby(["data", "method", "metric", "modality", "seed"]).value.mean()
    lines = [
        "### counterfactual\n",
        "Pooled over the test split, mean ± std over seeds (value function: accuracy). "
        "`share`: Shapley value / sum of Shapley values; `alone`: v({m}) − v(∅); "
        "`interaction`: Shapley interaction index; `top agrees`: seeds whose largest Shapley "
        "value is the expected dominant modality (shapes: the only modality carrying the label "
        "factor; AV-MNIST: the image, by intuition).\n",
    ]
    header = [
        "data",
        "method",
        "acc v(all)",
        "v(∅)",
        "modality",
        "truth share",
        "Shapley share",
        "alone",
        "perceptual (norm.)",
        "interaction",
        "top agrees",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    plot_rows = []
    for (data, method), part in frame.groupby(["data", "method"], sort=False):
        s = per_seed.loc[(data, method)]

        def cell(metric: str, modality: str, s: pd.Series = s) -> str:
            if (metric, modality) not in s.index:
                return "—"
            v = s.loc[(metric, modality)]
            return fmt(float(v.mean()), float(v.std(ddof=1)))

        modalities = sorted(set(part[part.metric == "shapley"].modality))
        inter = next(iter(set(part[part.metric == "shapley_interaction"].modality)), "")
        seeds = sorted(set(part.seed))
        shap = part[part.metric == "shapley"].pivot_table(
            index="seed", columns="modality", values="value"
        )
        dominant = part[(part.metric == "truth_dominant") & (part.value == 1)].modality
        tops = set(dominant)
        expected = next(iter(tops)) if len(tops) == 1 else ""
        agree = (
            f"{int((shap.idxmax(axis=1) == expected).sum())}/{len(seeds)} ({expected})"
            if expected
            else ("— (tie expected)" if tops else "—")
        )
        for i, m in enumerate(modalities):
            truth = s.loc[("truth_share", m)] if ("truth_share", m) in s.index else None
            truth_text = (
                "—" if truth is None or truth.isna().all() else f"{float(truth.mean()):.2f}"
            )
            first = i == 0
            lines.append(
                "| "
                + " | ".join(
                    [
                        str(data) if first else "",
                        str(method) if first else "",
                        cell("shapley_v_full", "fused") if first else "",
                        cell("shapley_v_empty", "fused") if first else "",
                        m,
                        truth_text,
                        cell("shapley_share", m),
                        cell("shapley_solo", m),
                        cell("perceptual_score_normalised", m),
                        cell("shapley_interaction", inter) if first else "",
                        agree if first else "",
                    ]
                )
                + " |"
            )
            share = s.loc[("shapley_share", m)]
            plot_rows.append(
                {
                    "data": data,
                    "method": method,
                    "modality": m,
                    "mean": float(share.mean()),
                    "std": float(share.std(ddof=1)),
                    "truth": float(truth.mean()) if truth is not None else math.nan,
                }
            )
    if figures is not None:
        shares_figure(pd.DataFrame(plot_rows), figures / "counterfactual_shares.png")
    probes = in_study_order(read(results / "counterfactual"), studies)
    return "\n".join(lines) + "\n\n" + probe_table(probes)


def probe_table(frame: pd.DataFrame) -> str:
    """Linear-probe accuracy per dataset × method × modality of the counterfactual study's runs."""
    if frame.empty:
        return ""
    rows = frame[(frame.metric == METRIC) & (frame.condition == CONDITION)]
    stats_ = rows.groupby(["data", "method", "modality"], sort=False).value.agg(
        ["mean", "std", "count"]
    )
    modalities = [m for m in ("image", "text", "audio", "fused") if m in set(rows.modality)]
    header = ["data", "method", *(f"probe {m}" for m in modalities), "n"]
    lines = [
        "Linear-probe accuracy (test split, all training labels) of the same runs:\n",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for (data, method), part in stats_.groupby(level=[0, 1], sort=False):
        part = part.droplevel([0, 1])
        cells = [
            fmt(float(part.loc[m, "mean"]), float(part.loc[m, "std"])) if m in part.index else "—"
            for m in modalities
        ]
        n = int(part["count"].min())
        lines.append(f"| {data} | {method} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(lines) + "\n"


def shares_figure(rows: pd.DataFrame, path: Path) -> None:
    """Shapley share of the image per design and method, with the truth as a marker."""
    datasets = list(dict.fromkeys(rows.data))
    methods = list(dict.fromkeys(rows.method))
    first = rows[rows.modality == "image"]
    fig, ax = plt.subplots(figsize=(4.6, 2.4))
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        part = first[first.method == method].set_index("data").reindex(datasets)
        x = np.arange(len(datasets)) + (j - (len(methods) - 1) / 2) * width
        ax.bar(x, part["mean"], width, yerr=part["std"], label=method, capsize=2)
    truth = first.groupby("data", sort=False).truth.first().reindex(datasets)
    ax.scatter(np.arange(len(datasets)), truth, marker="_", s=400, color="k", label="truth")
    ax.set_xticks(np.arange(len(datasets)), datasets, fontsize=7)
    ax.set_ylabel("image Shapley share", fontsize=7)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def study_keys(name: str, studies: Path, key: str) -> list[str]:
    """Labels under ``key`` of ``studies/<name>.yaml`` in file order (empty if unreadable)."""
    path = studies / f"{name}.yaml"
    try:
        entries = (yaml.safe_load(path.read_text()) or {}).get(key) or {}
    except (OSError, yaml.YAMLError):
        return []
    return list(entries) if isinstance(entries, dict) else []


def study_methods(name: str, studies: Path) -> list[str]:
    """Method labels of ``studies/<name>.yaml`` in file order (empty if it cannot be read)."""
    return study_keys(name, studies, "methods")


def repair_section(
    name: str,
    results: Path,
    studies: Path,
    test: str = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """Accuracy tables of a repair study: quantity × variant, Welch vs the study's first method.

    The quantities are the method's own head (``head_acc``: fused, and per modality where the
    method reports it) and the linear probes (``linear_probe_acc``) of every modality.
    """
    frame = read(results / name)
    if frame.empty:
        return f"### {name}\n\n(no rows in {results / name}: `modalab sweep studies/{name}.yaml`)\n"
    present = list(dict.fromkeys(frame.method))
    variants = [m for m in study_methods(name, studies) if m in present]
    if not variants and REPAIR_BASELINES.get(name) in present:
        variants = [REPAIR_BASELINES[name]]
    variants += [m for m in present if m not in variants]
    baseline = variants[0]
    frame = frame[frame.metric.isin(REPAIR_METRICS)]
    summary = summarize(frame, baseline=baseline, test="welch" if test == "welch" else "paired")
    adjusted = statistics.adjust_p_values(summary["p_value"].to_numpy(float), correction)
    cells = [
        statistics.CellStats(
            m,
            sd,
            n,
            p_value=p,
            p_adjusted=a if correction != "none" else math.nan,
            marks=statistics.ZERO_VARIANCE if n > 1 and sd == 0 else "",
        )
        for m, sd, n, p, a in zip(
            summary["mean"], summary["std"], summary["n"], summary["p_value"], adjusted
        )
    ]
    summary = summary.assign(
        cell=[statistics.format_cell(c) for c in cells],
        severity=[f"{v:g}" for v in summary.severity],
    )
    keys = ["data", "scenario", "severity", "metric", "modality", "condition"]
    index = [c for c in keys if summary[c].nunique() > 1 or c in ("metric", "modality")]
    table = summary.pivot_table(index=index, columns="method", values="cell", aggfunc="first")
    table = table[[v for v in variants if v in table.columns]].fillna("—").reset_index()
    table.columns.name = None
    low, high = int(summary.n.min()), int(summary.n.max())
    seeds = f"{low}" if low == high else f"{low}-{high}"
    return (
        f"### {name}\n\nMean ± std over {seeds} seeds; markers: {caption(test, correction)} "
        f"vs `{baseline}` (the study's first method).\n\n" + markdown_table(table) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", help="study names (default: all)")
    parser.add_argument("--results", default="results", type=Path, help="folder of the stores")
    parser.add_argument("--figures", type=Path, default=None, help="write PNG figures here")
    parser.add_argument("--studies", default="studies", type=Path, help="folder of study files")
    parser.add_argument(
        "--check",
        type=Path,
        default=None,
        help="exit 1 unless every generated table appears verbatim in this file (docs/study.md)",
    )
    parser.add_argument(
        "--test",
        default="auto",
        choices=["auto", "paired_t", "wilcoxon", "welch"],
        help="test against the baseline (auto: paired t over shared seeds, else Welch)",
    )
    parser.add_argument(
        "--correction",
        default="holm",
        choices=["holm", "bh", "none"],
        help="multiple-comparison correction within each table",
    )
    args = parser.parse_args()
    valid = [*SCENARIO_STUDIES, "counterfactual", *REPAIR_STUDIES]
    names = args.sections or valid
    texts = []
    for name in names:
        if name in SCENARIO_STUDIES:
            texts.append(
                scenario_section(
                    name, args.results, args.figures, args.studies, args.test, args.correction
                )
            )
        elif name == "counterfactual":
            texts.append(counterfactual_section(args.results, args.figures, args.studies))
        elif name in REPAIR_STUDIES:
            texts.append(
                repair_section(name, args.results, args.studies, args.test, args.correction)
            )
        else:
            raise SystemExit(f"Unknown section {name!r}; valid: {valid}.")
        if args.check is None:
            print(texts[-1])
    if args.check is not None:
        document = args.check.read_text()
        tables = [t for text in texts for t in text.split("\n\n") if t.startswith("|")]
        stale = [t for t in tables if t.strip() not in document]
        for table in stale:
            print(f"not in {args.check}:\n{table}\n")
        print(f"{len(tables) - len(stale)}/{len(tables)} tables of {args.check} are up to date")
        raise SystemExit(1 if stale else 0)


if __name__ == "__main__":
    main()
