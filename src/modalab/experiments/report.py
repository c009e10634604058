"""Reports of runs and sweeps: a Markdown file and a self-contained HTML page with figures.

:func:`build_report` reads the results under a path (a results store or run directories, see
:mod:`modalab.experiments.collect`) and writes ``report.md``, ``report.html`` (every figure
embedded as a data URI, no external file, script or style sheet) and ``figures/`` (PNG and
PDF of every figure). It contains the config, the learning curves, the result tables
(mean ± std over seeds with a significance marker against a baseline method), robustness
curves (metric against severity per method, when the results have scenarios),
counterfactual tables and plots (when the results have counterfactual metrics), retrieval
matrices, and a 2-D map of each method's test embeddings coloured by label and by modality.

The significance marker compares each method with the baseline method (default
``supervised``) over seeds — by default with a paired t-test over the seeds both share (Welch's
t-test when they share fewer than two), the p-values Holm-corrected within each table of the
report (representation quality, retrieval, counterfactual): the library's statistics
(:mod:`modalab.evaluation.statistics`, :func:`modalab.experiments.tables.table_cells`), as in
study tables. ``test`` and ``correction`` choose others (Welch, Wilcoxon; Benjamini–Hochberg,
none).
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modalab.evaluation import statistics
from modalab.experiments.collect import CollectedResults, collect_results
from modalab.experiments.curves import broadcast_references
from modalab.experiments.io import atomic_write_text, load_yaml
from modalab.experiments.plots import (
    direction_matrices,
    embedding_map,
    figure_png,
    grouped_bars,
    learning_curves,
    robustness_curves,
    save_figure,
)
from modalab.experiments.progress import progress_bar
from modalab.experiments.tables import CORRECTIONS, markdown_table, table_cells

__all__ = [
    "COUNTERFACTUAL_PREFIXES",
    "ReportConfig",
    "ReportFiles",
    "build_report",
    "compare_results",
    "config_differences",
    "embedding_features",
    "markdown_table",
    "modality_gap",
    "read_learning_curves",
    "separate_configs",
    "summarize",
    "wide_table",
]

#: Metric-name prefixes of counterfactual analyses (ablation, perceptual score, Shapley values,
#: swap tests); rows with these metrics are reported in their own section.
COUNTERFACTUAL_PREFIXES: tuple[str, ...] = (
    "ablation",
    "perceptual_score",
    "shapley",
    "swap",
    "counterfactual",
)

#: Columns that identify one measured quantity (besides the method and the seed).
QUANTITY = ("data", "scenario", "severity", "metric", "modality", "condition")
#: Scenario values of rows without a scenario (run directories: ``none``; older rows: empty).
NO_SCENARIO = ("", "none")

TESTS = {
    "auto": "a two-sided paired t-test (scipy.stats.ttest_rel) over the seeds both methods "
    "share, Welch's t-test where they share fewer than two",
    "paired_t": "a two-sided paired t-test (scipy.stats.ttest_rel) over the seeds both methods "
    "share",
    "wilcoxon": "a two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon) over shared seeds",
    "welch": "Welch's two-sided t-test (unequal variances, scipy.stats.ttest_ind with "
    "equal_var=False) over seeds",
}
#: Former names of tests, still accepted.
TEST_ALIASES = {"paired": "paired_t"}
#: Rows that describe the test data, not the method (equal for every method of a seed): shown,
#: never tested or marked.
DESCRIPTIVE_METRICS = ("linear_probe_n_test", "linear_probe_majority_rate")
#: The tables of a report, each one family of comparisons for the correction.
FAMILIES = ("representation quality", "cross-modal retrieval", "counterfactual")


@dataclass
class ReportConfig:
    """Settings of a report.

    Attributes:
        baseline: Method every other method is tested against.
        test: ``auto`` (paired over shared seeds, else Welch), ``paired_t``, ``wilcoxon`` or
            ``welch`` (see :data:`TESTS`; ``paired`` is ``paired_t``).
        correction: ``holm``, ``bh`` or ``none``, over the comparisons of each table.
        alpha: Significance levels of ``*``, ``**``, ``***``.
        formats: Figure files written beside the report (``png``, ``pdf``, ``svg``).
        dpi: Resolution of the PNG figures (the page embeds these).
        embedding: Draw the embedding maps (needs the runs' ``model.safetensors``).
        embedding_samples: Test samples per map.
        curve_metric: Metric of the robustness curves and of the bar chart.
        title: Page title; default: the name of the results folder.
    """

    baseline: str = "supervised"
    test: str = "auto"
    correction: str = "holm"
    alpha: tuple[float, float, float] = (0.05, 0.01, 0.001)
    formats: tuple[str, ...] = ("png", "pdf")
    dpi: int = 110
    embedding: bool = True
    embedding_samples: int = 300
    curve_metric: str = "linear_probe_acc"
    title: str = ""

    def __post_init__(self) -> None:
        self.test = _test_name(self.test)
        _check_correction(self.correction)
        if self.embedding_samples < 10:
            raise ValueError(f"embedding_samples={self.embedding_samples} must be at least 10.")


@dataclass
class ReportFiles:
    """What :func:`build_report` wrote.

    Attributes:
        markdown: ``report.md``.
        html: ``report.html`` (self-contained).
        figures: Figure files (PNG/PDF).
        notes: What was left out and why (e.g. no weights for the embedding maps).
    """

    markdown: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- statistics


def separate_configs(
    table: pd.DataFrame, run_dirs: Mapping[str, Path] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Relabel the methods whose runs differ in more than the seed, so that none are pooled.

    Seeds of one configuration share its ``config_hash`` (the resolved config without seed and
    study). Within one quantity (data, scenario, severity, metric, modality, condition), a
    method with several config hashes is several experiments: each gets its own label,
    ``method [key=value, ...]`` naming the config keys that differ (read from the run
    directories when known), else ``method [config <hash>]``. Rows are never averaged across
    labels afterwards.

    Args:
        table: Results rows (:data:`~modalab.experiments.collect.RESULT_COLUMNS`).
        run_dirs: Run id → run directory (for the config keys that differ).

    Returns:
        The table with ``method`` relabelled where needed, and one warning per split method.

    Example:
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"data": "d", "scenario": "", "severity": float("nan"),
        ...     "metric": "acc", "modality": "", "condition": "", "method": "a",
        ...     "config_hash": ["h1", "h1", "h2"], "run_id": ["r1", "r2", "r3"],
        ...     "seed": [0, 1, 0], "value": [0.5, 0.7, 0.9]})
        >>> sorted(separate_configs(rows)[0]["method"].unique())
        ['a [config h1]', 'a [config h2]']
    """
    if table.empty or "config_hash" not in table.columns:
        return table, []
    keyed = table.assign(_severity=[_label(v) for v in table["severity"]])
    quantity = [("_severity" if c == "severity" else c) for c in QUANTITY]
    hashes = keyed.groupby([*quantity, "method"], sort=False, dropna=False)["config_hash"]
    data_at = quantity.index("data")
    split = {(key[data_at], key[-1]) for key, n in hashes.nunique().items() if n > 1}
    if not split:
        return table, []
    first_run = table.drop_duplicates("config_hash").set_index("config_hash")["run_id"]
    flat: dict[str, dict[str, Any]] = {}
    for config_hash, run_id in first_run.items():
        run_dir = (run_dirs or {}).get(str(run_id))
        if run_dir is not None and (run_dir / "config.yaml").is_file():
            flat[str(config_hash)] = _flatten(load_yaml(run_dir / "config.yaml"))
    labels: dict[tuple[str, str, str], str] = {}
    warnings_: list[str] = []
    for data, method in sorted(split):
        rows = (table["method"] == method) & (table["data"] == data)
        configs = sorted(table.loc[rows, "config_hash"].unique())
        known = [flat[h] for h in configs if h in flat]
        differing: list[str] = []
        if len(known) == len(configs):
            keys = sorted(set().union(*known))
            differing = [
                k
                for k in keys
                if k not in _NOT_IDENTITY
                and len({json.dumps(f.get(k), default=str) for f in known}) > 1
            ]
        for h in configs:
            if differing:
                text = ", ".join(f"{k}={flat[h].get(k, '')}" for k in differing)
                labels[(data, method, h)] = f"{method} [{text}]"
            else:
                labels[(data, method, h)] = f"{method} [config {h[:8]}]"
        named = f" ({', '.join(differing)})" if differing else ""
        warnings_.append(
            f"Runs of `{method}` on `{data}` differ in more than the seed{named}: "
            f"{len(configs)} configurations, reported separately and never averaged together."
        )
    relabelled = [
        labels.get((str(d), str(m), str(h)), str(m))
        for d, m, h in zip(table["data"], table["method"], table["config_hash"])
    ]
    return table.assign(method=relabelled), warnings_


#: Config keys that name where a run lives or how it prints, not what it computes.
_NOT_IDENTITY = ("run_name", "output_dir", "seed", "study", "store", "resume")


def _test_name(test: str) -> str:
    test = TEST_ALIASES.get(test, test)
    if test not in TESTS:
        raise ValueError(f"test={test!r} is unknown; use one of {sorted(TESTS)}.")
    return test


def _check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"correction={correction!r} is unknown; use one of {sorted(CORRECTIONS)}.")


def family(metric: str, modality: str) -> str:
    """The report table (one of :data:`FAMILIES`) that shows a quantity.

    Example:
        >>> family("linear_probe_acc", "fused"), family("R@1", "image->audio")
        ('representation quality', 'cross-modal retrieval')
    """
    if str(metric).startswith(COUNTERFACTUAL_PREFIXES):
        return FAMILIES[2]
    return FAMILIES[1] if "->" in str(modality) else FAMILIES[0]


def summarize(
    table: pd.DataFrame,
    baseline: str = "supervised",
    test: str = "auto",
    alpha: Sequence[float] = (0.05, 0.01, 0.001),
    correction: str = "holm",
) -> pd.DataFrame:
    """Mean ± std over seeds of every quantity and method, with a test against ``baseline``.

    Each table of the report (:func:`family`) is one family of comparisons: its p-values are
    corrected together (``correction``), and the marker reads the corrected p-value.

    Args:
        table: Results rows (:data:`~modalab.experiments.collect.RESULT_COLUMNS`).
        baseline: The reference method; its own rows and quantities it lacks get no p-value.
        test: ``auto``, ``paired_t``, ``wilcoxon`` or ``welch`` (see :data:`TESTS`).
        alpha: Significance levels of the marker.
        correction: ``holm``, ``bh`` or ``none`` (see :data:`CORRECTIONS`).

    Returns:
        One row per quantity × method: ``n`` (seeds), ``mean``, ``std`` (sample std, ddof=1),
        ``p_value``, ``p_adjusted`` (``p_value`` when uncorrected), ``family`` (the table),
        ``tests`` (comparisons in that family) and ``marker``.

    Example:
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"data": "d", "scenario": "", "severity": float("nan"),
        ...     "metric": "acc", "modality": "", "condition": "",
        ...     "method": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1],
        ...     "value": [0.5, 0.7, 0.9, 0.9]})
        >>> summarize(rows, baseline="a")[["method", "n", "mean", "std"]].round(3).values.tolist()
        [['a', 2, 0.6, 0.141], ['b', 2, 0.9, 0.0]]
    """
    test = _test_name(test)
    _check_correction(correction)
    missing = [c for c in (*QUANTITY, "method", "seed", "value") if c not in table.columns]
    if missing:
        raise ValueError(f"The results table lacks the columns {missing}.")
    # Severity is a float that is NaN when there is no scenario: group on its text label.
    keyed = table.assign(_severity=[_label(v) for v in table["severity"]])
    keys = [*(("_severity" if c == "severity" else c) for c in QUANTITY), "method"]
    per_seed: dict[tuple[Any, ...], pd.Series] = {}
    first: dict[tuple[Any, ...], dict[str, Any]] = {}
    for key, part in keyed.groupby(keys, sort=False, dropna=False):
        per_seed[key] = part.groupby("seed")["value"].mean()  # one value per seed
        first[key] = part.iloc[0][[*QUANTITY, "method"]].to_dict()
    reference = {
        key: (*key[:-1], baseline)
        for key in per_seed
        if first[key]["metric"] not in DESCRIPTIVE_METRICS
    }
    families = {key: family(first[key]["metric"], first[key]["modality"]) for key in per_seed}
    cells: dict[tuple[Any, ...], statistics.CellStats] = {}
    tests: dict[str, int] = {}
    for name in FAMILIES:
        members = {key: values for key, values in per_seed.items() if families[key] == name}
        part = table_cells(members, reference, test, correction)  # type: ignore[arg-type]
        tests[name] = sum(not math.isnan(cell.p_value) for cell in part.values())
        cells |= part
    rows = []
    for key in per_seed:
        cell = cells[key]
        adjusted = cell.p_adjusted if correction != "none" else cell.p_value
        rows.append(
            {
                **first[key],
                "n": cell.n,
                "mean": cell.mean,
                "std": cell.std,
                "p_value": cell.p_value,
                "p_adjusted": adjusted,
                "family": families[key],
                "tests": tests[families[key]],
                "marks": "" if first[key]["metric"] in DESCRIPTIVE_METRICS else cell.marks,
                "marker": statistics.significance_stars(adjusted, alpha),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            *QUANTITY,
            *("method", "n", "mean", "std", "p_value", "p_adjusted", "family", "tests"),
            *("marks", "marker"),
        ],
    )


#: The one marker of a value that is missing or undefined in a table.
MISSING = "—"


def _cell(mean: float, std: float, n: int, marker: str = "", marks: str = "") -> str:
    text = statistics.format_cell(statistics.CellStats(mean, std, n), stars=False)
    return text if text == MISSING else " ".join(p for p in (text, marker, marks) if p)


def wide_table(summary: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Quantities as rows, methods as columns, cells ``mean ± std marker marks``.

    Columns that are constant and empty (no scenario, no severity) are dropped.
    """
    methods = list(methods or dict.fromkeys(summary["method"]))
    frame = summary.assign(
        cell=[
            _cell(m, s, n, k, d)
            for m, s, n, k, d in zip(
                summary["mean"], summary["std"], summary["n"], summary["marker"], summary["marks"]
            )
        ]
    )
    index = [c for c in QUANTITY if _informative(frame[c])] or ["metric"]
    return _pivot(frame, index, "method", "cell", methods)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return str(value)


def _pivot(
    frame: pd.DataFrame, index: list[str], column: str, value: str, columns: Sequence[str]
) -> pd.DataFrame:
    """Rows of ``index`` values, one column per ``column`` value; absent cells :data:`MISSING`.

    Rows keep their first-seen order, except that severities run in numeric order within
    each scenario (``0, 0.5, 1``, never ``0.5, 0, 1``).
    """
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    if "severity" in frame.columns and "severity" in index:
        order = frame["scenario"].astype(str) if "scenario" in frame.columns else None
        frame = frame.assign(_scenario_order=pd.factorize(order)[0] if order is not None else 0)
        frame = frame.sort_values(
            ["_scenario_order", "severity"], kind="stable", na_position="first"
        )
    for record in frame.to_dict("records"):
        key = tuple(_label(record[c]) for c in index)
        rows.setdefault(key, {})[str(record[column])] = str(record[value])
    present = [c for c in columns if any(c in cells for cells in rows.values())]
    return pd.DataFrame(
        [[*key, *(cells.get(c, MISSING) for c in present)] for key, cells in rows.items()],
        columns=[*index, *present],
    )


def _informative(column: pd.Series) -> bool:
    values = column.dropna()
    if values.empty:
        return False
    return not (values.astype(str) == "").all() and (
        values.nunique() > 1 or column.name in ("metric", "modality", "condition")
    )


# --------------------------------------------------------------------------- run data


def read_learning_curves(run_dirs: dict[str, Path], table: pd.DataFrame) -> pd.DataFrame:
    """Epoch-level losses of every run from its Lightning CSV log (``logs/metrics.csv``).

    Returns:
        Columns ``run_id``, ``method``, ``data``, ``seed``, ``epoch``, ``series`` and ``value``
        for the logged ``*/loss`` columns (the last logged value of each epoch).
    """
    meta = table.drop_duplicates("run_id").set_index("run_id")
    frames = []
    for run_id, run_dir in run_dirs.items():
        path = run_dir / "logs" / "metrics.csv"
        if not path.exists() or run_id not in meta.index:
            continue
        log = pd.read_csv(path)
        losses = [c for c in log.columns if c.endswith("/loss")]
        if not losses or "epoch" not in log.columns:
            continue
        long = log.melt(id_vars=["epoch"], value_vars=losses, var_name="series").dropna()
        long = long.groupby(["epoch", "series"], as_index=False)["value"].last()
        long["run_id"] = run_id
        long["method"] = meta.loc[run_id, "method"]
        long["seed"] = int(meta.loc[run_id, "seed"])
        long["data"] = meta.loc[run_id, "data"]
        frames.append(long)
    if not frames:
        columns = ["run_id", "method", "data", "seed", "epoch", "series", "value"]
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)


@dataclass
class EmbeddingSample:
    """Test-split embeddings of one run, stacked over modalities.

    Attributes:
        embeddings: ``[N * M, D]`` embeddings (the joint space when all modalities share it).
        labels: ``[N * M]`` clean labels.
        modalities: ``[N * M]`` modality names.
        space: ``"joint"`` or ``"representation"``.
        class_names: The dataset's class names, where it has them (else empty).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    modalities: list[str]
    space: str
    class_names: list[str] = field(default_factory=list)


def embedding_features(run_dir: str | Path, n_samples: int = 300) -> EmbeddingSample:
    """Embeddings of the first ``n_samples`` test samples of a finished run.

    The run is rebuilt by :func:`~modalab.experiments.rundir.load_run` (its trained weights
    from ``model.safetensors``, no pickle). Only present modalities are kept.

    Args:
        run_dir: A finished run directory.
        n_samples: Test samples to embed.

    Returns:
        The stacked embeddings with their labels and modalities.
    """
    import torch

    from modalab.evaluation.features import extract_features
    from modalab.experiments.rundir import load_run

    loaded = load_run(run_dir)
    run_dir, splits, method = loaded.run_dir, loaded.splits, loaded.method
    subset = splits.test.subset(torch.arange(min(n_samples, len(splits.test))))
    features = extract_features(
        method.representations,  # type: ignore[arg-type]
        subset,
        method.joint_embeddings,  # type: ignore[arg-type]
    )
    dims = {v.shape[1] for v in features.joint.values()}
    space, source = (
        ("joint", features.joint) if len(dims) == 1 else ("representation", features.features)
    )
    if len({v.shape[1] for v in source.values()}) != 1:
        raise ValueError(
            f"The modalities of {run_dir.name} have embeddings of different sizes "
            f"{ {k: v.shape[1] for k, v in source.items()} } and no shared joint space: "
            "one map cannot hold them."
        )
    blocks, labels, names = [], [], []
    for modality, values in source.items():
        rows = features.present[modality]
        blocks.append(values[rows].numpy())
        labels.append(features.clean_label[rows].numpy())
        names.extend([modality] * int(rows.sum()))
    class_names = [str(c) for c in splits.info.class_names]
    return EmbeddingSample(
        np.concatenate(blocks), np.concatenate(labels), names, space, class_names
    )


def modality_gap(sample: EmbeddingSample) -> dict[str, float]:
    """Distance between the centroids of L2-normalised embeddings of each modality pair.

    The *modality gap* of Liang, Zhang, Kwon, Yeung and Zou, "Mind the Gap", NeurIPS 2022.

    Example:
        >>> s = EmbeddingSample(np.array([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]]),
        ...                     np.zeros(4), ["a", "a", "b", "b"], "joint")
        >>> round(modality_gap(s)["a-b"], 4)
        1.4142
    """
    normed = sample.embeddings / np.linalg.norm(sample.embeddings, axis=1, keepdims=True).clip(
        1e-12
    )
    names = list(dict.fromkeys(sample.modalities))
    modality = np.asarray(sample.modalities)
    centroids = {n: normed[modality == n].mean(axis=0) for n in names}
    return {
        f"{a}-{b}": float(np.linalg.norm(centroids[a] - centroids[b]))
        for i, a in enumerate(names)
        for b in names[i + 1 :]
    }


def _tsne(embeddings: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(5.0, (len(embeddings) - 1) / 4)))
    return np.asarray(
        TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
            embeddings
        )
    )


# --------------------------------------------------------------------------- document


@dataclass
class _Block:
    kind: str  # heading | text | table | figure | code
    text: str = ""
    level: int = 2
    frame: pd.DataFrame | None = None
    name: str = ""
    png: bytes = b""


def _to_markdown(title: str, blocks: Sequence[_Block]) -> str:
    out = [f"# {title}", ""]
    for block in blocks:
        if block.kind == "heading":
            out += ["#" * block.level + " " + block.text, ""]
        elif block.kind == "text":
            out += [block.text, ""]
        elif block.kind == "table" and block.frame is not None:
            out += [markdown_table(block.frame), ""]
        elif block.kind == "figure":
            out += [f"![{block.text}](figures/{block.name}.png)", "", f"*{block.text}*", ""]
        elif block.kind == "code":
            out += ["```yaml", block.text.rstrip(), "```", ""]
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.2em}
h2{margin-top:1.6em;border-bottom:1px solid #eee}
table{border-collapse:collapse;font-size:13px;margin:.6em 0 1.2em;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f5f5f5}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}
pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:12px}
code{background:#f2f2f2;padding:0 3px}
"""


def _inline(text: str) -> str:
    escaped = html.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _to_html(title: str, blocks: Sequence[_Block]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for block in blocks:
        if block.kind == "heading":
            out.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif block.kind == "text":
            out.append(f"<p>{_inline(block.text)}</p>")
        elif block.kind == "table" and block.frame is not None:
            out.append(block.frame.to_html(index=False, border=0, escape=True))
        elif block.kind == "figure":
            data = base64.b64encode(block.png).decode("ascii")
            out.append(
                f'<figure id="fig-{html.escape(block.name)}"><img alt="{html.escape(block.text)}" '
                f'src="data:image/png;base64,{data}"><figcaption>{_inline(block.text)}'
                "</figcaption></figure>"
            )
        elif block.kind == "code":
            out.append(
                "<details><summary>config.yaml (click to open)</summary>"
                f"<pre>{html.escape(block.text)}</pre></details>"
            )
    out.append("</body></html>")
    return "\n".join(out)


# --------------------------------------------------------------------------- report


class _Writer:
    """Collects blocks and writes each figure to disk as it is added."""

    def __init__(self, out_dir: Path, config: ReportConfig) -> None:
        self.blocks: list[_Block] = []
        self.files: list[Path] = []
        self.out_dir = out_dir
        self.config = config

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(_Block("heading", text, level=level))

    def text(self, text: str) -> None:
        self.blocks.append(_Block("text", text))

    def table(self, frame: pd.DataFrame) -> None:
        self.blocks.append(_Block("table", frame=frame))

    def code(self, text: str) -> None:
        self.blocks.append(_Block("code", text))

    def figure(self, figure: Any, name: str, caption: str) -> None:
        self.files += save_figure(
            figure, self.out_dir / "figures", name, self.config.formats, self.config.dpi
        )
        self.blocks.append(
            _Block("figure", caption, name=name, png=figure_png(figure, self.config.dpi))
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "x"


def build_report(
    path: str | Path,
    out_dir: str | Path | None = None,
    config: ReportConfig | None = None,
    quiet: bool = True,
) -> ReportFiles:
    """Write the Markdown and HTML report of the results under ``path``.

    Args:
        path: A results store, a sweep folder of run directories, or one run directory.
        out_dir: Where to write ``report.md``, ``report.html`` and ``figures/``; default
            ``<path>/report``.
        config: Report settings.
        quiet: No progress bar.

    Returns:
        The written files and notes on what was left out.
    """
    config = config or ReportConfig()
    collected = collect_results(path)
    out = Path(out_dir) if out_dir is not None else Path(path) / "report"
    out.mkdir(parents=True, exist_ok=True)
    writer = _Writer(out, config)
    notes: list[str] = []
    table, split_notes = separate_configs(collected.table, collected.run_dirs)
    notes.extend(split_notes)
    collected = dataclasses.replace(collected, table=table)
    # A study's reference runs (severity NaN, run without their scenario) are shown, and
    # tested seed by seed, at every severity of their scenario, as in study tables.
    table = broadcast_references(table)
    methods = _ordered_methods(table, config.baseline)
    summary = summarize(table, config.baseline, config.test, config.alpha, config.correction)

    steps = ["overview", "curves", "tables", "robustness", "counterfactual", "embeddings"]
    with progress_bar(len(steps), "report", quiet=quiet) as bar:
        _overview(writer, collected, methods, notes)
        bar.advance()
        _curves_section(writer, collected, notes)
        bar.advance()
        _tables_section(writer, table, summary, methods, config, notes)
        bar.advance()
        _robustness_section(writer, summary, config)
        bar.advance()
        _counterfactual_section(writer, summary, methods)
        bar.advance()
        if config.embedding:
            _embedding_section(writer, collected, methods, config, notes)
        else:
            notes.append("Embedding maps not drawn (disabled).")
        bar.advance()
    if notes:
        writer.heading("Notes")
        for note in notes:
            writer.text(f"- {note}")
    title = config.title or f"modalab report: {Path(path).resolve().name}"
    md_path, html_path = out / "report.md", out / "report.html"
    atomic_write_text(md_path, _to_markdown(title, writer.blocks))
    atomic_write_text(html_path, _to_html(title, writer.blocks))
    return ReportFiles(md_path, html_path, writer.files, notes)


def _ordered_methods(table: pd.DataFrame, baseline: str) -> list[str]:
    methods = sorted(table["method"].unique())
    return [baseline, *[m for m in methods if m != baseline]] if baseline in methods else methods


def _overview(
    writer: _Writer, collected: CollectedResults, methods: list[str], notes: list[str]
) -> None:
    table = collected.table
    runs = table.drop_duplicates("run_id")
    writer.heading("Overview")
    seeds = sorted(int(s) for s in runs["seed"].unique())
    writer.text(
        f"{len(runs)} runs: methods {', '.join(f'`{m}`' for m in methods)}; data "
        f"{', '.join(f'`{d}`' for d in sorted(runs['data'].unique()))}; seeds {seeds}."
    )
    per_method = runs.groupby("method").agg(runs=("run_id", "count"), seeds=("seed", "nunique"))
    writer.table(per_method.reindex(methods).reset_index())
    revisions = sorted(r for r in runs["git_revision"].unique() if r)
    if revisions:
        writer.text(f"Git revisions: {', '.join(revisions)}.")
    versions = sorted({v for v in runs["versions"].unique() if v and v != "{}"})
    if len(versions) == 1:
        pairs = json.loads(versions[0])
        writer.text("Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(pairs.items())) + ".")
    elif len(versions) > 1:
        notes.append(f"The runs used {len(versions)} different sets of package versions.")
    if collected.unfinished:
        names = ", ".join(p.name for p in collected.unfinished)
        notes.append(f"Unfinished runs skipped (no metrics.json): {names}.")
    writer.heading("Config")
    configs = {
        run_id: load_yaml(collected.run_dirs[run_id] / "config.yaml")
        for run_id in runs["run_id"]
        if run_id in collected.run_dirs
    }
    if not configs:
        writer.text(
            "The run directories were not found beside the results store; the configs are "
            "identified by their hash: "
            + ", ".join(f"`{h}`" for h in sorted(runs["config_hash"].unique()))
            + "."
        )
        return
    flat = {k: _flatten(v) for k, v in configs.items()}
    keys = sorted(set().union(*flat.values()))
    varying = [
        k
        for k in keys
        if k not in ("run_name", "output_dir")
        and len({json.dumps(f.get(k), default=str) for f in flat.values()}) > 1
    ]
    if varying:
        writer.text("What differs between the runs:")
        frame = pd.DataFrame(
            [{"run": r, **{k: flat[r].get(k, "") for k in varying}} for r in sorted(flat)]
        )
        writer.table(frame.astype(str))
    first = sorted(configs)[0]
    writer.text(f"The config of `{first}` (the others differ only as listed above):")
    writer.code((collected.run_dirs[first] / "config.yaml").read_text())


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _curves_section(writer: _Writer, collected: CollectedResults, notes: list[str]) -> None:
    curves = read_learning_curves(collected.run_dirs, collected.table)
    writer.heading("Learning curves")
    if curves.empty:
        notes.append("No learning curves: no run directory with logs/metrics.csv was found.")
        writer.text("No training logs were found.")
        return
    several = curves["data"].nunique() > 1
    for data, part in curves.groupby("data", sort=False):  # one figure per dataset
        writer.figure(
            learning_curves(part),
            "learning_curves" + (f"_{_slug(str(data))}" if several else ""),
            f"Training and validation loss per epoch on `{data}` (mean over seeds, band: ±1 std).",
        )


def _tables_section(
    writer: _Writer,
    table: pd.DataFrame,
    summary: pd.DataFrame,
    methods: list[str],
    config: ReportConfig,
    notes: list[str],
) -> None:
    writer.heading("Results")
    if config.baseline in methods:
        levels = ", ".join(f"{'*' * (i + 1)} p < {a:g}" for i, a in enumerate(config.alpha))
        counts = summary.drop_duplicates("family").set_index("family")["tests"]
        families = "; ".join(f"{name}: {int(counts.get(name, 0))}" for name in FAMILIES)
        writer.text(
            f"Mean ± std (sample std) over seeds. Marker: {TESTS[config.test]} of each method "
            f"against the baseline `{config.baseline}` for the same row, p-values "
            f"{CORRECTIONS[config.correction]} (within each table; comparisons per table: "
            f"{families}): {levels} on the {'corrected ' if config.correction != 'none' else ''}"
            "p-value; no mark: not significant or fewer than two seeds. †: zero variance "
            "across seeds."
        )
    else:
        writer.text("Mean ± std (sample std) over seeds.")
        notes.append(
            f"No significance markers: the baseline method `{config.baseline}` is not among the "
            f"results ({', '.join(methods)}); choose one with --baseline."
        )
    if config.curve_metric not in set(summary["metric"]):
        notes.append(
            f"No bar chart or robustness curve: --metric {config.curve_metric} is not among the "
            f"metrics ({', '.join(sorted(set(summary['metric'])))})."
        )
    main = summary[~_is_counterfactual(summary["metric"])]
    plain = main[~main["modality"].str.contains("->", regex=False)]
    directional = main[main["modality"].str.contains("->", regex=False)]
    if not plain.empty:
        writer.heading("Representation quality", 3)
        writer.table(wide_table(plain, methods))
        bars = plain[(plain["metric"] == config.curve_metric) & plain["scenario"].isin(NO_SCENARIO)]
        several = bars["data"].nunique() > 1  # one figure per dataset: never averaged across
        for (data, condition), part in bars.groupby(["data", "condition"], sort=False):
            name = f"bars_{_slug(config.curve_metric)}_{_slug(str(condition))}"
            name += f"_{_slug(str(data))}" if several else ""
            title = f"{config.curve_metric} ({condition})" if condition else config.curve_metric
            writer.figure(
                grouped_bars(
                    part.assign(group=part["modality"])
                    .groupby(["group", "method"], sort=False)
                    .agg(mean=("mean", "mean"), std=("std", "mean"))
                    .reset_index(),
                    f"{data}: {title}",
                    config.curve_metric,
                ),
                name,
                f"`{config.curve_metric}` per modality and method on `{data}` ({condition}); "
                "error bars ±1 std over seeds.",
            )
    if not directional.empty:
        writer.heading("Cross-modal retrieval", 3)
        writer.table(wide_table(directional, methods))
        first = directional[directional["metric"] == sorted(directional["metric"].unique())[0]]
        first = first[first["scenario"].isin(NO_SCENARIO)]
        several = first["data"].nunique() > 1
        for data, part in first.groupby("data", sort=False):  # one figure per dataset
            metric = str(part["metric"].iloc[0])
            writer.figure(
                direction_matrices(part, metric),
                f"matrix_{_slug(metric)}" + (f"_{_slug(str(data))}" if several else ""),
                f"`{metric}` on `{data}` from each source modality (rows) to each target "
                "(columns), mean over seeds.",
            )


def _is_counterfactual(metric: pd.Series) -> pd.Series:
    return metric.str.startswith(COUNTERFACTUAL_PREFIXES)


def _robustness_section(writer: _Writer, summary: pd.DataFrame, config: ReportConfig) -> None:
    scenarios = summary[~summary["scenario"].isin(NO_SCENARIO) & summary["severity"].notna()]
    if scenarios.empty:
        return
    writer.heading("Robustness")
    writer.text("Metric against scenario severity per method (mean over seeds, band: ±1 std).")
    curves = scenarios[scenarios["metric"] == config.curve_metric]
    for (modality, condition), part in curves.groupby(["modality", "condition"], sort=False):
        name = "_".join(
            ["robustness", *(_slug(str(x)) for x in (config.curve_metric, modality, condition))]
        )
        label = f"{config.curve_metric} ({modality})" if modality else config.curve_metric
        writer.figure(
            robustness_curves(part, label),
            name,
            f"`{config.curve_metric}` of `{modality or 'all'}` {condition} against severity, per "
            "scenario and method.",
        )


def _counterfactual_section(writer: _Writer, summary: pd.DataFrame, methods: list[str]) -> None:
    rows = summary[_is_counterfactual(summary["metric"])]
    if rows.empty:
        return
    writer.heading("Counterfactual analysis")
    writer.text(
        "Counterfactual attributions per modality (mean ± std over seeds): what the downstream "
        "prediction would have been had a modality been removed, replaced or swapped."
    )
    writer.table(wide_table(rows, methods))
    for metric, part in rows.groupby("metric", sort=False):
        directional = part["modality"].str.contains("->", regex=False)
        if directional.all():
            writer.figure(
                direction_matrices(part, str(metric)),
                f"counterfactual_{_slug(str(metric))}",
                f"`{metric}` per source → target modality and method.",
            )
        else:
            plain = part[~directional]
            groups = plain.assign(
                group=[f"{m} {c}".strip() for m, c in zip(plain["modality"], plain["condition"])]
            )
            writer.figure(
                grouped_bars(groups, str(metric), str(metric)),
                f"counterfactual_{_slug(str(metric))}",
                f"`{metric}` per modality and method; error bars ±1 std over seeds.",
            )


def _embedding_section(
    writer: _Writer,
    collected: CollectedResults,
    methods: list[str],
    config: ReportConfig,
    notes: list[str],
) -> None:
    runs = collected.table.drop_duplicates("run_id").sort_values(["method", "seed", "run_id"])
    chosen = {}
    for method in methods:
        for run_id in runs.loc[runs["method"] == method, "run_id"]:
            if (
                run_id in collected.run_dirs
                and (collected.run_dirs[run_id] / "model.safetensors").exists()
            ):
                chosen[method] = run_id
                break
    missing = [m for m in methods if m not in chosen]
    if missing:
        notes.append(
            f"No embedding map for {', '.join(missing)}: no run directory with model.safetensors."
        )
    if not chosen:
        return
    writer.heading("Embedding maps")
    writer.text(
        f"t-SNE (van der Maaten and Hinton, JMLR 2008) of the test embeddings of up to "
        f"{config.embedding_samples} test samples per modality, one run per method (the lowest "
        "seed). Left: coloured by label (marker: modality); right: coloured by modality. "
        "Separate clusters per modality on the right are the modality gap (Liang et al., "
        "NeurIPS 2022), measured below as the distance between the modality centroids of the "
        "L2-normalised embeddings."
    )
    gaps = []
    for method, run_id in chosen.items():
        try:
            sample = embedding_features(collected.run_dirs[run_id], config.embedding_samples)
        except (OSError, ValueError, KeyError) as error:  # ConfigError is a ValueError
            notes.append(f"No embedding map for {method}: {error}")
            continue
        points = _tsne(sample.embeddings)
        writer.figure(
            embedding_map(
                points,
                sample.labels,
                sample.modalities,
                f"{method} ({run_id})",
                sample.class_names or None,
            ),
            f"embedding_{_slug(method)}",
            f"`{method}`: t-SNE of the {sample.space} embeddings of run `{run_id}`.",
        )
        gaps.append(
            {
                "method": method,
                "run": run_id,
                "space": sample.space,
                **{k: f"{v:.3f}" for k, v in modality_gap(sample).items()},
            }
        )
    if gaps:
        writer.heading("Modality gap", 3)
        writer.table(pd.DataFrame(gaps).fillna(""))


# --------------------------------------------------------------------------- compare


def compare_results(
    paths: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    metrics: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Side-by-side table of several runs or sweeps: one column per (source, method).

    Args:
        paths: Results stores, sweep folders or run directories.
        labels: Column labels of the sources; default: the folder names.
        metrics: Keep only these metrics.

    Returns:
        Quantities as rows; cells ``mean ± std (n)`` over seeds.
    """
    if labels is not None and len(labels) != len(paths):
        raise ValueError(f"{len(labels)} labels for {len(paths)} paths; give one per path.")
    names = list(labels) if labels is not None else [Path(p).resolve().name for p in paths]
    if len(set(names)) != len(names):
        names = [f"{i}:{n}" for i, n in enumerate(names)]
    frames = []
    for name, path in zip(names, paths):
        collected = collect_results(path)
        table, _ = separate_configs(collected.table, collected.run_dirs)  # never pooled
        if metrics:
            table = table[table["metric"].isin(metrics)]
        summary = summarize(table)
        summary["column"] = [f"{name}/{m}" for m in summary["method"]]
        frames.append(summary)
    if not frames or all(f.empty for f in frames):
        raise ValueError(f"No results to compare (metrics filter: {metrics}).")
    combined = pd.concat(frames, ignore_index=True)
    combined["cell"] = [
        f"{_cell(m, s, n)} ({n})"
        for m, s, n in zip(combined["mean"], combined["std"], combined["n"])
    ]
    index = [c for c in QUANTITY if _informative(combined[c])] or ["metric"]
    return _pivot(combined, index, "column", "cell", list(dict.fromkeys(combined["column"])))


def config_differences(paths: Sequence[str | Path]) -> list[str]:
    """Warnings for runs of one method and dataset that differ in more than the seed.

    Looks at every run directory under ``paths`` (results stores without their run
    directories are compared by config hash only) and names the config keys that differ.

    Args:
        paths: Results stores, sweep folders or run directories.

    Returns:
        One warning per (method, data) whose runs have several configurations.
    """
    configs: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    hashes: dict[tuple[str, str], set[str]] = {}
    for path in paths:
        collected = collect_results(path)
        runs = collected.table.drop_duplicates("run_id")
        for row in runs.itertuples(index=False):
            key = (str(row.method), str(row.data))
            hashes.setdefault(key, set()).add(str(row.config_hash))
            run_dir = collected.run_dirs.get(str(row.run_id))
            if run_dir is not None and (run_dir / "config.yaml").is_file():
                flat = _flatten(load_yaml(run_dir / "config.yaml"))
                configs.setdefault(key, {})[str(row.config_hash)] = flat
    out = []
    for (method, data), found in sorted(hashes.items()):
        if len(found) < 2:
            continue
        known = list(configs.get((method, data), {}).values())
        keys = sorted(set().union(*known)) if len(known) == len(found) else []
        differing = [
            k
            for k in keys
            if k not in _NOT_IDENTITY
            and len({json.dumps(f.get(k), default=str) for f in known}) > 1
        ]
        what = ", ".join(differing) if differing else "config hashes " + ", ".join(sorted(found))
        out.append(
            f"runs of {method} on {data} differ in more than the seed ({what}): compare them "
            "as different experiments."
        )
    return out
