"""Study tables: the ``tables:`` section of a study file rendered from its results store.

A study file (``studies/<x>.yaml``) names its tables next to its grid; ``modalab tables
studies/<x>.yaml`` renders them as Markdown from the store that ``modalab sweep`` wrote.
Every cell is :class:`~modalab.evaluation.statistics.CellStats` formatted by
:func:`~modalab.evaluation.statistics.format_cell`: mean ± sample std (ddof=1) over seeds,
significance stars of the test against the table's baseline
(:func:`~modalab.evaluation.statistics.compare_seeds`: paired t over shared seeds, Welch
otherwise, or a named test), the p-values of one table corrected together
(:func:`~modalab.evaluation.statistics.adjust_p_values`, Holm by default) and the marks of
degenerate cells. A footnote under each table names the test, the correction and the seeds.

Three kinds of table (:class:`TableSpec`):

- ``curve``: methods × severities of one scenario, with the clean-minus-hardest ``drop``,
  the normalised area under the curve and the effective robustness
  (:func:`~modalab.experiments.curves.robustness_scores`); one table per scenario and
  modality; bootstrap intervals over test samples where ``linear_probe_n_test`` is stored.
- ``grid``: labelled rows × labelled columns, each a filter of the store's columns; a cell
  is the merge of its row's and column's filters (and ``where``); a filter value ``"*"`` (or
  a list) makes one column (row) per value found in the store. With ``gap`` (``floor`` and
  ``ceiling`` filters) each cell is, seed by seed, the fraction of the floor-to-ceiling gap
  it closes (knowledge transfer: 0 = the student alone, 1 = the teacher).
- ``counterfactual``: the modality attributions of ``modalab counterfactual`` per dataset ×
  method against the known truth.

Example (a study file)::

    tables:
      - kind: curve
        modalities: [fused, image]
        baseline: supervised
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from modalab.evaluation import statistics
from modalab.experiments.config import ConfigError
from modalab.experiments.curves import (
    broadcast_references,
    robustness_curves,
    robustness_scores,
)
from modalab.experiments.store import ResultsStore

__all__ = [
    "Claim",
    "TableSpec",
    "caption",
    "check_claims",
    "check_document",
    "counterfactual_table",
    "curve_table",
    "grid_table",
    "load_tables",
    "markdown_table",
    "parse_claims",
    "rendered_cells",
    "study_tables",
    "table_cells",
    "validate_tables",
]

Test = Literal["auto", "paired_t", "wilcoxon", "welch"]
TESTS: dict[str, str] = {
    "auto": "paired t-test over shared seeds (Welch otherwise)",
    "paired_t": "paired t-test",
    "wilcoxon": "Wilcoxon signed-rank test",
    "welch": "Welch's t-test",
}
CORRECTIONS = {
    "holm": "Holm-corrected",
    "bh": "Benjamini–Hochberg-corrected",
    "none": "uncorrected",
}
Filter = Mapping[str, Any]


@dataclass
class TableSpec:
    """One table of a study file's ``tables:`` list.

    Attributes:
        kind: ``curve``, ``grid`` or ``counterfactual``.
        title: Heading (grid); ``{data}``, ``{severity}``, ``{percent}`` and the keys of
            ``where`` are filled in.
        metric: Metric of a curve table.
        condition: Condition of a curve table (``labels=1`` for linear probes).
        modalities: Modalities of a curve table, one table each.
        baseline: Curve: the method tested against; grid: the row label tested against.
        where: Grid: the filter every cell shares (``metric``, ``modality``, ...).
        by_data: Grid: dataset label → filter merged into ``where`` on that dataset.
        rows: Grid: row label → filter.
        columns: Grid: column label → filter (``"*"`` or a list: one column per value).
        per: Grid: one table per value of these store columns.
        untested: Grid: row labels shown without a test.
        gap: Grid: ``{floor: filter, ceiling: filter}``: each cell shows, seed by seed, the
            fraction of the gap from floor to ceiling that it closes,
            ``(v - floor) / (ceiling - floor)`` (e.g. floor: the student trained without the
            teacher; ceiling: the teacher) — the filters are merged over the column's.
        notes: Lines printed under the table.
        store: Counterfactual: the analysis store (relative to the results folder's parent).
        head_hidden: Counterfactual: hidden width of the head that ``modalab counterfactual
            --study`` fits on the frozen features of encoder-only methods (CLIP, ...) before
            analysing them (``0``: a linear head, which cannot represent a synergy such as
            ``(shape + colour) mod 4``).
    """

    kind: str = "curve"
    title: str = ""
    metric: str = "linear_probe_acc"
    condition: str = "labels=1"
    modalities: list[str] = field(default_factory=lambda: ["fused"])
    baseline: str = "supervised"
    where: dict[str, Any] = field(default_factory=dict)
    by_data: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    per: list[str] = field(default_factory=lambda: ["data"])
    untested: list[str] = field(default_factory=list)
    gap: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    store: str = ""
    head_hidden: int = 0


def load_tables(path: str | Path) -> list[TableSpec]:
    """The validated ``tables:`` section of a study file (empty when it has none).

    Raises:
        ConfigError: On an unknown key or kind, or a grid without rows and columns.
    """
    file = Path(path)
    try:
        raw = (yaml.safe_load(file.read_text()) or {}).get("tables") or []
        specs = [
            OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(TableSpec), entry))
            for entry in raw
        ]
    except (OSError, yaml.YAMLError, OmegaConfBaseException, AttributeError) as error:
        raise ConfigError(f"Invalid tables: section of {file}: {error}") from None
    for i, spec in enumerate(specs):
        assert isinstance(spec, TableSpec)
        if spec.kind not in ("curve", "grid", "counterfactual"):
            raise ConfigError(
                f"tables[{i}] of {file}: kind {spec.kind!r} is unknown; "
                "use curve, grid or counterfactual."
            )
        if spec.kind == "grid" and (not spec.rows or not spec.columns):
            raise ConfigError(f"tables[{i}] of {file}: a grid table needs rows and columns.")
        if (spec.head_hidden and spec.kind != "counterfactual") or spec.head_hidden < 0:
            raise ConfigError(
                f"tables[{i}] of {file}: head_hidden={spec.head_hidden} is for a "
                "counterfactual table, as a width >= 0 (0: a linear head)."
            )
        if spec.gap and (spec.kind != "grid" or set(spec.gap) != {"floor", "ceiling"}):
            raise ConfigError(
                f"tables[{i}] of {file}: gap takes exactly floor: and ceiling: filters, "
                f"in a grid table (got {sorted(spec.gap)} in a {spec.kind} table)."
            )
    return specs  # type: ignore[return-value]


def validate_tables(path: str | Path) -> list[str]:
    """Problems of a study file's tables against its grid (empty list: every name exists).

    Curve baselines must be methods of the study; grid filters may name only store columns,
    and their ``method``, ``scenario`` and ``data`` values must be those of the study.
    """
    from modalab.experiments.store import COLUMNS
    from modalab.experiments.sweep import load_study

    study = load_study(path)
    known: dict[str, Any] = {"method": study.methods, "scenario": study.scenarios}
    if study.datasets:
        known["data"] = study.datasets
    problems = []
    for i, spec in enumerate(load_tables(path)):
        if spec.kind == "curve" and spec.baseline not in study.methods:
            problems.append(f"tables[{i}]: baseline {spec.baseline!r} is not a method")
        fixed_rows = spec.kind == "grid" and "{" not in "".join(spec.rows)
        if fixed_rows and spec.baseline not in spec.rows:
            problems.append(f"tables[{i}]: baseline {spec.baseline!r} is not one of its rows")
        filters = [
            spec.where,
            *spec.by_data.values(),
            *spec.rows.values(),
            *spec.columns.values(),
            *spec.gap.values(),
        ]
        for f in filters:
            for key, value in f.items():
                if key not in COLUMNS:
                    problems.append(f"tables[{i}]: {key!r} is not a store column")
                values = value if isinstance(value, list) else [value]
                if key in known and value != "*" and not set(values) <= set(known[key]):
                    problems.append(f"tables[{i}]: {key} {value!r} is not in the study")
        unknown = set(spec.by_data) - set(study.datasets)
        if unknown:
            problems.append(f"tables[{i}]: by_data names {sorted(unknown)}, not datasets")
    return problems


# ------------------------------------------------------------------------------- statistics
def table_cells(
    values: Mapping[Any, pd.Series],
    reference: Mapping[Any, Any],
    test: Test = "auto",
    correction: statistics.Correction = "holm",
    majority: Mapping[Any, float] | None = None,
) -> dict[Any, statistics.CellStats]:
    """Cell statistics of one table: each key tested against its reference, corrected together.

    Args:
        values: Cell key → per-seed values (a Series indexed by seed).
        reference: Cell key → the key of the cell it is tested against (absent: untested).
        test: Test of :func:`~modalab.evaluation.statistics.compare_seeds`.
        correction: Correction over the table's p-values.
        majority: Cell key → majority-class rate (collapse marks).

    Returns:
        Cell key → statistics with ``p_value`` and ``p_adjusted`` set.
    """
    cells: dict[Any, statistics.CellStats] = {}
    for key, series in values.items():
        series = series.dropna()
        cell = statistics.CellStats.of(series.to_numpy(float), (majority or {}).get(key))
        base = values.get(reference.get(key))
        if reference.get(key) not in (None, key) and base is not None:
            base = base.dropna()
            if len(series) and len(base):
                cell.p_value = statistics.compare_seeds(
                    series.to_dict(), base.to_dict(), test
                ).p_value
        cells[key] = cell
    adjusted = statistics.adjust_p_values([c.p_value for c in cells.values()], correction)
    for cell, p in zip(cells.values(), adjusted):
        cell.p_adjusted = float(p) if correction != "none" else math.nan
    return cells


def caption(test: str, correction: str) -> str:
    """How the markers of a table were computed, in words (with the degenerate-mark legend)."""
    return (
        f"{TESTS[test]}, {CORRECTIONS[correction]} within the table; {statistics.DEGENERATE_LEGEND}"
    )


def markdown_table(frame: pd.DataFrame) -> str:
    r"""A DataFrame as a Markdown pipe table (no index).

    Example:
        >>> print(markdown_table(pd.DataFrame({"a": [1], "b": ["x|y"]})))
        | a | b |
        |---|---|
        | 1 | x\|y |
    """

    def clean(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(clean(c) for c in frame.columns) + " |"]
    lines.append("|" + "|".join("---" for _ in frame.columns) + "|")
    body = ["| " + " | ".join(clean(v) for v in row) + " |" for row in frame.to_numpy().tolist()]
    return "\n".join([*lines, *body])


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return markdown_table(pd.DataFrame(list(rows), columns=list(header))).split("\n")


# ------------------------------------------------------------------------------ curve table
def curve_table(
    frame: pd.DataFrame,
    modality: str,
    baseline: str = "supervised",
    metric: str = "linear_probe_acc",
    condition: str = "labels=1",
    order: Sequence[str] = (),
    test: Test = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """Methods × severities (mean ± std, stars vs baseline), drop, AUC, eff. robustness.

    Each cell is tested against the baseline's at the same severity; ``drop`` (clean minus
    hardest severity per seed) against the baseline's drops; every p-value of the table is
    one family. Collapse marks need ``linear_probe_majority_rate`` rows, bootstrap intervals
    ``linear_probe_n_test`` rows (both stored with ``eval.record_samples=true``).
    """
    rows = frame[(frame.metric == metric) & (frame.modality == modality)]
    rows = rows[rows.condition == condition]
    curves = robustness_curves(rows, metric, modality)
    scores = robustness_scores(curves, baseline=baseline).set_index("method")
    severities = list(dict.fromkeys(curves.severity))
    found = list(dict.fromkeys(curves.method))
    methods = [m for m in order if m in found] + [m for m in found if m not in order]
    per_seed = rows.groupby(["method", "severity", "seed"]).value.mean()
    side = frame[frame.modality == modality]
    majority = side[side.metric == "linear_probe_majority_rate"].groupby("severity").value.mean()
    sizes = side[(side.metric == "linear_probe_n_test") & (side.condition == condition)]
    n_test = sizes.groupby(["method", "severity", "seed"]).value.first()
    clean, hardest = severities[0], severities[-1]

    def seeds_of(method: str, severity: float) -> pd.Series:
        if (method, severity) not in per_seed.index.droplevel(2):
            return pd.Series(dtype=float)
        return per_seed.loc[(method, severity)]

    values: dict[tuple[str, str], pd.Series] = {}
    for method in methods:
        for s in severities:
            values[(method, str(s))] = seeds_of(method, s)
        values[(method, "drop")] = (seeds_of(method, clean) - seeds_of(method, hardest)).dropna()
    reference = {(m, s): (baseline, s) for m, s in values if m != baseline}
    rates = {(m, str(s)): float(majority[s]) for m in methods for s in majority.index}
    cells = table_cells(values, reference, test, correction, rates)
    for (method, s), cell in cells.items():
        seeds = values[(method, s)]
        keys = [(method, float(s), seed) for seed in seeds.index] if s != "drop" else []
        if metric == "linear_probe_acc" and keys and all(k in n_test.index for k in keys):
            runs = [statistics.correctness_from_accuracy(seeds[k[2]], int(n_test[k])) for k in keys]
            cell.ci = statistics.bootstrap_ci(runs, n_resamples=1000, seed=0)
    header = ["method", *(f"{s:g}" for s in severities), "drop", "AUC", "eff. rob."]
    body = []
    for method in methods:
        eff = scores.loc[method, "effective_robustness"]
        n = int(per_seed.loc[method].groupby(level=0).size().min())
        body.append(
            [
                f"{method} (n={n})",
                *(statistics.format_cell(cells[(method, str(s))]) for s in [*severities, "drop"]),
                f"{scores.loc[method, 'auc']:.3f}",
                "—" if method == baseline or math.isnan(eff) else f"{eff:+.3f}",
            ]
        )
    return "\n".join(_markdown(header, body))


# ------------------------------------------------------------------------------- grid table
def _match(frame: pd.DataFrame, spec: Filter) -> pd.DataFrame:
    for key, value in spec.items():
        if key == "severity":
            frame = frame[np.isclose(frame["severity"].astype(float), float(value))]
        else:
            frame = frame[frame[key].astype(str) == str(value)]
    return frame


def _expand(
    frame: pd.DataFrame, labelled: Mapping[str, Filter], context: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Labels → filters, with one entry per found value of every ``"*"`` or list value."""
    out: dict[str, dict[str, Any]] = {}
    for label, spec in labelled.items():
        spec = {k: (v.format(**context) if isinstance(v, str) else v) for k, v in spec.items()}
        wild = [k for k, v in spec.items() if v == "*" or isinstance(v, list)]
        fixed = {k: v for k, v in spec.items() if k not in wild}
        found = _match(frame, fixed)
        choices = []
        for k in wild:
            present = list(dict.fromkeys(found[k]))
            if k == "severity":
                present = sorted(float(v) for v in present)
            choices.append(present if spec[k] == "*" else [v for v in spec[k] if v in present])
        for combo in itertools.product(*choices):
            filled = {**fixed, **dict(zip(wild, combo))}
            out[label.format(**_names({**context, **filled}))] = filled
    return out


def _names(context: Mapping[str, Any]) -> dict[str, Any]:
    names = dict(context)
    if isinstance(names.get("severity"), float):
        names["percent"] = 100 * names["severity"]
    return names


def grid_table(
    frame: pd.DataFrame,
    spec: TableSpec,
    context: Mapping[str, Any],
    test: Test = "auto",
    correction: statistics.Correction = "holm",
) -> str:
    """One grid table of ``spec`` on ``frame`` (already restricted to ``context``'s values)."""
    where = {**spec.where, **spec.by_data.get(str(context.get("data", "")), {})}
    names = _names({**where, **context})
    frame = _match(frame, where)
    rows = _expand(frame, spec.rows, names)
    cols = _expand(frame, spec.columns, names)

    def by_seed(f: Filter) -> pd.Series:
        part = _match(frame, f).dropna(subset=["value"])
        if part.duplicated(["seed"]).any():
            raise ConfigError(f"Several rows per seed match {dict(f)}: the filter is ambiguous.")
        return part.set_index(part["seed"].astype(int))["value"].astype(float)

    values = {(r, c): by_seed({**rf, **cf}) for r, rf in rows.items() for c, cf in cols.items()}
    if spec.gap:
        floors = {c: by_seed({**cf, **spec.gap["floor"]}) for c, cf in cols.items()}
        spans = {c: by_seed({**cf, **spec.gap["ceiling"]}) - floors[c] for c, cf in cols.items()}
        for (r, c), v in values.items():  # no gap (span 0): undefined
            values[r, c] = (v - floors[c]) / spans[c].where(spans[c].abs() > 1e-12)
    reference = {
        (r, c): (spec.baseline, c) for r, c in values if r not in spec.untested and r in rows
    }
    cells = table_cells(values, reference, test, correction)
    body = [[r, *(statistics.format_cell(cells[(r, c)], show_p=True) for c in cols)] for r in rows]
    seeds = sorted(int(s) for s in frame["seed"].unique())
    lines = [f"#### {spec.title.format(**names)}", "", *_markdown(["", *cols], body), ""]
    if spec.gap:
        lines.append(
            f"Fraction of the gap closed, per seed: (cell − floor) / (ceiling − floor), floor "
            f"{dict(spec.gap['floor'])}, ceiling {dict(spec.gap['ceiling'])} (same column and "
            "seed; 0: no better than the floor, 1: as good as the ceiling). "
        )
    lines.append(
        f"Mean ± std over n = {len(seeds)} seeds {seeds}; p_adj and stars: {TESTS[test]} "
        f"against the row `{spec.baseline}`, {CORRECTIONS[correction]} within the table. "
        f"{statistics.DEGENERATE_LEGEND}"
    )
    return "\n".join([*lines, *spec.notes]) + "\n"


# --------------------------------------------------------------------- counterfactual table
def counterfactual_table(
    frame: pd.DataFrame, methods: Sequence[str] = (), datasets: Sequence[str] = ()
) -> str:
    """Shapley shares, effects alone and interactions per dataset × method, with the truth.

    ``frame`` holds the rows of ``modalab counterfactual --study`` (metrics ``shapley``,
    ``shapley_share``, ``shapley_solo``, ``shapley_v_full``, ``shapley_v_empty``,
    ``shapley_interaction``, ``perceptual_score_normalised``, ``truth_share``,
    ``truth_dominant``).
    """
    keys = {
        c: frame[c].map({v: i for i, v in enumerate(o)}).fillna(len(o))
        for c, o in (("data", datasets), ("method", methods))
    }
    frame = frame.assign(_d=keys["data"], _m=keys["method"])
    frame = frame.sort_values(["_d", "_m"], kind="stable").drop(columns=["_d", "_m"])
    per_seed = frame.groupby(["data", "method", "metric", "modality", "seed"]).value.mean()
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
    body = []
    for (data, method), part in frame.groupby(["data", "method"], sort=False):
        s = per_seed.loc[(data, method)]

        def cell(metric: str, modality: str, s: pd.Series = s) -> str:
            if (metric, modality) not in s.index:
                return "—"
            return statistics.format_cell(statistics.CellStats.of(s.loc[(metric, modality)]))

        shap = part[part.metric == "shapley"].pivot_table(
            index="seed", columns="modality", values="value"
        )
        tops = set(part[(part.metric == "truth_dominant") & (part.value == 1)].modality)
        expected = next(iter(tops)) if len(tops) == 1 else ""
        agree = (
            f"{int((shap.idxmax(axis=1) == expected).sum())}/{part.seed.nunique()} ({expected})"
            if expected
            else ("— (tie expected)" if tops else "—")
        )
        inter = next(iter(set(part[part.metric == "shapley_interaction"].modality)), "")
        for i, m in enumerate(sorted(set(part[part.metric == "shapley"].modality))):
            truth = s.loc[("truth_share", m)] if ("truth_share", m) in s.index else None
            first = i == 0
            body.append(
                [
                    str(data) if first else "",
                    str(method) if first else "",
                    cell("shapley_v_full", "fused") if first else "",
                    cell("shapley_v_empty", "fused") if first else "",
                    m,
                    "—" if truth is None or truth.isna().all() else f"{float(truth.mean()):.2f}",
                    cell("shapley_share", m),
                    cell("shapley_solo", m),
                    cell("perceptual_score_normalised", m),
                    cell("shapley_interaction", inter) if first else "",
                    agree if first else "",
                ]
            )
    return "\n".join(_markdown(header, body))


# ----------------------------------------------------------------------------- study tables
def study_tables(
    study: str | Path,
    results: str | Path | None = None,
    smoke: bool = False,
    test: Test = "auto",
    correction: statistics.Correction = "holm",
    figures: str | Path | None = None,
) -> str:
    """Every table of a study file's ``tables:`` section, as one Markdown section.

    Args:
        study: The study file.
        results: Folder of the stores (default: the folder of the study's ``store:``).
        smoke: Read the ``--smoke`` stores (``<store>_smoke``, the analysis store's likewise).
        test: Test against the baseline.
        correction: Correction within each table.
        figures: Also write PNG figures here: ``<study>_<scenario>.png`` (curve tables: the
            curves of each modality, ±1 std) and ``<study>_shares.png`` (counterfactual:
            Shapley share of each modality per dataset and method).

    Returns:
        ``### <name>`` and the tables (a line naming the command when the store is empty).
    """
    from modalab.experiments import plots
    from modalab.experiments.sweep import load_study

    spec, tables = load_study(study), load_tables(study)
    root = Path(results) if results is not None else Path(spec.store).parent
    store = root / (Path(spec.store).name + ("_smoke" if smoke else ""))
    frame = ResultsStore(store).read()
    out = [f"### {spec.name}\n"]
    if frame.empty or not tables:
        why = f"no rows in {store}: `modalab sweep {study}`" if tables else "no `tables:` in it"
        return out[0] + f"\n({why})\n"
    methods = list(spec.methods)
    for table in tables:
        if table.kind == "counterfactual":
            analysis = root / (Path(table.store).name + ("_smoke" if smoke else ""))
            part = ResultsStore(analysis).read()
            command = f"modalab counterfactual --study {study}" + (" --smoke" if smoke else "")
            text = f"(no rows in {analysis}: `{command}`)"
            if not part.empty:
                text = counterfactual_table(part, methods, list(spec.datasets)) + "\n"
            out.append(text)
            shares = part[part.metric == "shapley_share"].groupby(["data", "method", "modality"])
            summary = shares.value.agg(["mean", "std"]).reset_index()
            if figures is not None and not summary.empty:
                bars = summary.assign(group=summary.data + " " + summary.modality)
                _save(
                    plots.grouped_bars(bars, spec.name, "Shapley share"),
                    figures,
                    f"{spec.name}_shares",
                )
            continue
        if table.kind == "grid":
            keys = [k for k in table.per if k in frame.columns]
            groups = frame.groupby(keys, sort=True) if keys else [((), frame)]
            for values, part in groups:
                values = values if isinstance(values, tuple) else (values,)
                out.append(grid_table(part, table, dict(zip(keys, values)), test, correction))
            continue
        order = list(spec.scenarios)
        found = list(dict.fromkeys(frame.scenario))
        # The first curve table's figures keep the plain name; later ones name what they show.
        first = table is next(t for t in tables if t.kind == "curve")
        reading = "_".join([*table.modalities, table.metric, table.condition])
        suffix = "" if first else "_" + re.sub(r"[^A-Za-z0-9]+", "_", reading).strip("_")
        scenarios = [s for s in order if s in found] + [s for s in found if s not in order]
        # Several datasets (data labels): one table per dataset and scenario, never pooled.
        data_found = list(dict.fromkeys(frame.data))
        data_order = [d for d in spec.datasets or {} if d in data_found]
        datasets = data_order + [d for d in data_found if d not in data_order]
        several = len(datasets) > 1
        for data, scenario in ((d, s) for d in datasets for s in scenarios):
            of_data = frame[frame.data == data] if several else frame
            part = broadcast_references(of_data[of_data.scenario == scenario])  # flat rows
            rows = part[(part.metric == table.metric) & (part.condition == table.condition)]
            if rows.empty:  # e.g. probes fitted under an obstacle that is not at test time
                continue
            where = f"{data} / {scenario}" if several else scenario
            if figures is not None:
                curves = pd.concat(
                    [
                        robustness_curves(rows, table.metric, m).assign(scenario=m)
                        for m in table.modalities
                    ]
                )
                figure = plots.robustness_curves(curves, f"{table.metric} ({where})")
                name = f"{data}_{scenario}" if several else scenario
                _save(figure, figures, f"{spec.name}_{name}{suffix}")
            fit = "" if table.condition in ("labels=1", "") else f" (`{table.condition}`)"
            for modality in table.modalities:
                if rows[rows.modality == modality].empty:
                    continue
                out.append(
                    f"**{spec.name} / {where}** (`{part.severity_key.iloc[0]}`), "
                    f"`{table.metric}`{fit} on `{modality}`, test split; markers: "
                    f"{caption(test, correction)} vs {table.baseline}\n"
                )
                text = curve_table(
                    part,
                    modality,
                    table.baseline,
                    table.metric,
                    table.condition,
                    methods,
                    test,
                    correction,
                )
                out.append(text + "\n")
    return "\n".join(out)


def _save(figure: Any, folder: str | Path, name: str) -> None:
    import matplotlib.pyplot as plt

    from modalab.experiments.plots import save_figure

    save_figure(figure, folder, name, formats=("png",), dpi=80)
    plt.close(figure)


def check_document(text: str, document: str) -> tuple[int, list[str]]:
    """Tables of ``text`` (blocks starting with ``|``) and those not verbatim in ``document``."""
    tables = [t for t in text.split("\n\n") if t.startswith("|")]
    return len(tables), [t for t in tables if t.strip() not in document]


# ------------------------------------------------------------------------------------ claims
#: A claim of a document about one cell of a rendered table (an HTML comment, invisible in
#: the rendered page): ``<!-- claim: TABLE :: ROW :: COLUMN :: VERDICT [:: VALUE] -->``.
CLAIM = re.compile(r"<!--\s*claim:(.*?)-->", re.S)
VERDICTS = ("significant", "not significant", "untested")
_CURVE_TITLE = re.compile(
    r"^\*\*(.+?) / (.+?)\*\* \(`[^`]*`\), `([^`]*)`(?: \(`([^`]*)`\))? on `([^`]+)`"
)
_ROW_N = re.compile(r" \(n=\d+\)$")


@dataclass(frozen=True)
class Claim:
    """A sentence's pointer to the table cell it rests on.

    Attributes:
        table: The table's id: a grid table's title, ``study / scenario / modality`` for a
            curve table (``study / data / scenario / modality`` when the study has several
            datasets), ``study / counterfactual`` for the attribution table.
        row: The row label (a curve table's ``(n=...)`` suffix left out; ``data / method``
            in the attribution table).
        column: The column label (``column / modality`` for the attribution table's
            per-modality cells).
        verdict: ``significant`` (a corrected p < 0.05: the cell has a star),
            ``not significant`` (tested, no star) or ``untested`` (the cell carries no test).
        value: The mean as written in the sentence (checked to the digits given), or ``""``.
        line: Line of the document the claim is on.
    """

    table: str
    row: str
    column: str
    verdict: str
    value: str = ""
    line: int = 0


def parse_claims(document: str) -> tuple[list[Claim], list[str]]:
    """The claims of a document and the problems of those that do not parse.

    A claim may wrap over lines: runs of whitespace in its parts count as one space.

    Example:
        >>> text = "Dropout helps. <!-- claim: Q1 :: dropout :: 1 :: significant :: 0.57 -->"
        >>> claims, problems = parse_claims(text)
        >>> claims[0].row, claims[0].verdict, claims[0].value, problems
        ('dropout', 'significant', '0.57', [])
        >>> wrapped = "<!-- claim: Q1 :: modality" + chr(10) + "  dropout :: 1 :: untested -->"
        >>> parse_claims(wrapped)[0][0].row
        'modality dropout'
    """
    claims, problems = [], []
    for found in CLAIM.finditer(document):
        line = document.count("\n", 0, found.start()) + 1
        parts = [" ".join(p.split()) for p in found.group(1).split("::")]  # wrapped lines
        if len(parts) not in (4, 5) or parts[3] not in VERDICTS:
            problems.append(
                f"line {line}: claim {found.group(1).strip()!r} does not parse: expected "
                f"'TABLE :: ROW :: COLUMN :: {' | '.join(VERDICTS)} [:: VALUE]'"
            )
            continue
        table, row, column, verdict = parts[:4]
        value = parts[4] if len(parts) == 5 else ""
        claims.append(Claim(table, row, column, verdict, value, line))
    return claims, problems


def rendered_cells(text: str) -> dict[str, dict[tuple[str, str], str]]:
    r"""Table id → (row, column) → cell text, read back from :func:`study_tables`' Markdown.

    A curve table's id is ``study / scenario / modality``, followed by `` / metric`` when
    the metric is not ``linear_probe_acc`` and `` / condition`` when its caption names one.
    In the attribution table (``study / counterfactual``) a row is ``data / method`` and a
    cell is addressed by its column and the line's modality, ``Shapley share / text``, or
    by its column alone for the per-run cells of the block's first line (``interaction``).

    Example:
        >>> md = "#### Q1\n\n|  | a |\n|---|---|\n| m (n=5) | 0.5 ± 0.1 * |\n"
        >>> rendered_cells(md)["Q1"][("m", "a")]
        '0.5 ± 0.1 *'
        >>> md = "**s / miss** (`k`), `linear_probe_acc` (`labels=1,fit=obstacle`) on `fused`, x\n"
        >>> list(rendered_cells(md + "\n|  | a |\n|---|---|\n| m | 0.5 |\n"))
        ['s / miss / fused / labels=1,fit=obstacle']
        >>> md = "### cf\n\n| data | method | modality | share | interaction |\n"
        >>> md += "|---|---|---|---|---|\n| d | m | image | 0.4 ± 0.1 | 0.6 ± 0.0 |\n"
        >>> md += "|  |  | text | 0.6 ± 0.1 |  |\n"
        >>> cells = rendered_cells(md)["cf / counterfactual"]
        >>> cells[("d / m", "share / text")], cells[("d / m", "interaction")]
        ('0.6 ± 0.1', '0.6 ± 0.0')
    """
    tables: dict[str, dict[tuple[str, str], str]] = {}
    study, table_id, header, block = "", "", list[str](), ""
    for line in text.splitlines():
        if line.startswith("### "):
            study = line[4:].strip()
        elif line.startswith("#### "):
            table_id, header = line[5:].strip(), []
        elif curve := _CURVE_TITLE.match(line):
            name, scenario, metric, condition, modality = curve.groups()
            parts = [name, scenario, modality]  # other readings than the default probe:
            parts += [metric] if metric != "linear_probe_acc" else []  # ... / head_acc
            parts += [condition] if condition else []  # ... / labels=1,fit=obstacle
            table_id, header = " / ".join(p.strip() for p in parts), []
        elif line.startswith("|"):
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if not header:
                header = cells
                if header and header[0] == "data":  # the counterfactual table
                    table_id = f"{study} / counterfactual"
            elif set("".join(cells)) <= set("-: "):
                continue  # the header's separator line
            elif header[0] == "data":
                # The attribution table: a block of lines per data x method, one per modality.
                line_of = dict(zip(header, cells))
                first = bool(line_of["data"])
                if first:
                    block = f"{line_of['data']} / {line_of['method']}"
                modality = line_of.get("modality", "")
                cells_of = tables.setdefault(table_id, {})
                for column, cell in line_of.items():
                    if column in ("data", "method", "modality") or not cell:
                        continue
                    cells_of[(block, f"{column} / {modality}")] = cell
                    if first:
                        cells_of[(block, column)] = cell
            else:
                row = _ROW_N.sub("", cells[0])
                for column, cell in zip(header[1:], cells[1:]):
                    tables.setdefault(table_id, {})[(row, column)] = cell
        elif not line.strip():
            header = []  # the next table needs its own header
    return tables


def check_claims(document: str, rendered: str) -> tuple[int, list[str]]:
    """Check every claim of ``document`` against the freshly rendered tables.

    A claim fails when its table or cell does not exist, when its verdict disagrees with the
    cell (``significant`` needs a star — the corrected p-value below 0.05 —, ``not
    significant`` a tested cell without one), or when its value is not the cell's mean to
    the digits written.

    Returns:
        ``(number of claims, problems)``.
    """
    claims, problems = parse_claims(document)
    tables = rendered_cells(rendered)
    for claim in claims:
        where = f"line {claim.line}: claim on {claim.table!r} [{claim.row}, {claim.column}]"
        if claim.table not in tables:
            problems.append(f"{where}: no such table (tables: {', '.join(sorted(tables))})")
            continue
        cell = tables[claim.table].get((claim.row, claim.column))
        if cell is None:
            problems.append(f"{where}: no such cell")
            continue
        starred = "*" in cell
        tested = starred or "p_adj=" in cell or "p=" in cell
        if claim.verdict == "significant" and not starred:
            problems.append(f"{where}: says significant, the cell is {cell!r} (p_adj >= 0.05)")
        elif claim.verdict == "not significant" and starred:
            problems.append(f"{where}: says not significant, the cell is {cell!r}")
        elif claim.verdict == "untested" and tested:
            problems.append(f"{where}: says untested, the cell carries a test: {cell!r}")
        if claim.value and not _same_value(claim.value, cell):
            problems.append(f"{where}: says {claim.value}, the cell is {cell!r}")
    return len(claims) + len(parse_claims(document)[1]), problems


def _same_value(written: str, cell: str) -> bool:
    mean = re.match(r"\s*([-+]?\d+(?:\.\d+)?)", cell)
    if mean is None:
        return False
    digits = len(written.split(".")[1]) if "." in written else 0
    return round(float(mean.group(1)), digits) == round(float(written), digits)
