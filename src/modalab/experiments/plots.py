"""Paper-quality figures of results: curves, bars, matrices and embedding maps.

Every function takes plain tables or arrays and returns a :class:`matplotlib.figure.Figure`
built without pyplot (no global state, no display needed); :func:`save_figure` writes it as
PNG (raster, for pages) and PDF (vector, for papers). Figures use a single-column width
(3.4 in) or a double-column width (7 in) and 8 pt fonts, so they drop into a paper unscaled.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "PAPER_STYLE",
    "direction_matrices",
    "embedding_map",
    "figure_png",
    "grouped_bars",
    "learning_curves",
    "robustness_curves",
    "save_figure",
]

#: Matplotlib settings of every modalab figure.
PAPER_STYLE: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.2,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text, accepted by publishers
    "ps.fonttype": 42,
    "savefig.bbox": "tight",
}

SINGLE_COLUMN = 3.4
DOUBLE_COLUMN = 7.0


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(PAPER_STYLE):  # type: ignore[arg-type]
        yield


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colours(names: Sequence[str]) -> dict[str, Any]:
    cycle = mpl.colormaps["tab10"]
    return {name: cycle(i % 10) for i, name in enumerate(names)}


def save_figure(
    figure: Figure,
    directory: str | Path,
    name: str,
    formats: Sequence[str] = ("png", "pdf"),
    dpi: int = 110,
) -> list[Path]:
    """Write ``figure`` as ``directory/name.<format>`` for each format; returns the paths.

    Example:
        >>> import tempfile
        >>> figure = _figure(2, 2)
        >>> [p.suffix for p in save_figure(figure, tempfile.mkdtemp(), "empty")]
        ['.png', '.pdf']
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    with _style():
        for fmt in formats:
            if fmt not in ("png", "pdf", "svg"):
                raise ValueError(f"Unsupported figure format {fmt!r}; use png, pdf or svg.")
            path = directory / f"{name}.{fmt}"
            figure.savefig(path, format=fmt, dpi=dpi, metadata=_metadata(fmt))
            paths.append(path)
    return paths


def _metadata(fmt: str) -> dict[str, Any]:
    # No creation date: regenerated figures are byte-stable where the backend allows it.
    if fmt == "pdf":
        return {"CreationDate": None, "Creator": "modalab"}
    if fmt == "svg":
        return {"Date": None}
    return {"Software": "modalab"}


def figure_png(figure: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (for embedding in a page)."""
    buffer = io.BytesIO()
    with _style():
        figure.savefig(buffer, format="png", dpi=dpi, metadata=_metadata("png"))
    return buffer.getvalue()


def learning_curves(curves: pd.DataFrame) -> Figure:
    """Training curves per method: mean over seeds per epoch, with a ±1 std band.

    Args:
        curves: Columns ``method``, ``seed``, ``epoch``, ``series`` (e.g. ``"train/loss"``)
            and ``value``.

    Returns:
        One panel per method (losses of different methods live on different scales).
    """
    with _style():
        methods = sorted(curves["method"].unique())
        figure = _figure(min(DOUBLE_COLUMN, 2.4 * len(methods) + 0.4), 2.0)
        axes = figure.subplots(1, len(methods), squeeze=False)[0]
        series_names = sorted(curves["series"].unique())
        colours = _colours(series_names)
        for ax, method in zip(axes, methods):
            part = curves[curves["method"] == method]
            for series in series_names:
                data = part[part["series"] == series]
                if data.empty:
                    continue
                stats = data.groupby("epoch")["value"].agg(["mean", "std"]).fillna(0.0)
                x = stats.index.to_numpy(dtype=float)
                ax.plot(x, stats["mean"], marker="o", ms=2.5, label=series, color=colours[series])
                ax.fill_between(
                    x,
                    stats["mean"] - stats["std"],
                    stats["mean"] + stats["std"],
                    alpha=0.2,
                    color=colours[series],
                    linewidth=0,
                )
            ax.set_title(method)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("loss")
            ax.legend(frameon=False)
    return figure


def grouped_bars(summary: pd.DataFrame, title: str, ylabel: str) -> Figure:
    """Bars of ``mean`` with ``std`` error bars: groups on the x axis, one bar per method.

    Args:
        summary: Columns ``group`` (x-axis category), ``method``, ``mean``, ``std``.
        title: Panel title.
        ylabel: Y-axis label.

    Example:
        >>> table = pd.DataFrame({"group": ["image", "text"], "method": "clip",
        ...                       "mean": [0.5, 0.7], "std": [0.1, 0.0]})
        >>> figure = grouped_bars(table, "probe", "accuracy")
        >>> [round(float(bar.get_height()), 2) for bar in figure.axes[0].patches]
        [0.5, 0.7]
    """
    with _style():
        groups = list(dict.fromkeys(summary["group"]))
        methods = list(dict.fromkeys(summary["method"]))
        figure = _figure(
            min(DOUBLE_COLUMN, max(SINGLE_COLUMN, 0.55 * len(groups) * len(methods))), 2.2
        )
        ax = figure.subplots()
        width = 0.8 / max(len(methods), 1)
        colours = _colours(methods)
        for i, method in enumerate(methods):
            part = summary[summary["method"] == method].set_index("group").reindex(groups)
            x = np.arange(len(groups)) + (i - (len(methods) - 1) / 2) * width
            ax.bar(
                x,
                part["mean"].to_numpy(dtype=float),
                width,
                yerr=part["std"].fillna(0.0).to_numpy(dtype=float),
                capsize=2,
                label=method,
                color=colours[method],
                error_kw={"elinewidth": 0.8},
            )
        ax.set_xticks(np.arange(len(groups)), groups, rotation=20 if len(groups) > 4 else 0)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.grid(axis="x", visible=False)
        ax.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def robustness_curves(summary: pd.DataFrame, metric_label: str) -> Figure:
    """Metric against severity per method, one panel per scenario, with a ±1 std band.

    Args:
        summary: Columns ``scenario``, ``severity``, ``method``, ``mean``, ``std``.
        metric_label: Y-axis label.
    """
    with _style():
        scenarios = sorted(summary["scenario"].unique())
        methods = list(dict.fromkeys(summary["method"]))
        colours = _colours(methods)
        figure = _figure(min(DOUBLE_COLUMN, 2.4 * len(scenarios) + 0.4), 2.2)
        axes = figure.subplots(1, len(scenarios), squeeze=False, sharey=True)[0]
        for ax, scenario in zip(axes, scenarios):
            part = summary[summary["scenario"] == scenario]
            for method in methods:
                data = part[part["method"] == method].sort_values("severity")
                if data.empty:
                    continue
                x = data["severity"].to_numpy(dtype=float)
                mean = data["mean"].to_numpy(dtype=float)
                std = data["std"].fillna(0.0).to_numpy(dtype=float)
                ax.plot(x, mean, marker="o", ms=3, label=method, color=colours[method])
                ax.fill_between(x, mean - std, mean + std, alpha=0.2, color=colours[method], lw=0)
            ax.set_title(scenario)
            ax.set_xlabel("severity")
        axes[0].set_ylabel(metric_label)
        shown: dict[str, Any] = {}  # every method of every panel (a control may miss some)
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                shown.setdefault(label, handle)
        axes[-1].legend(list(shown.values()), list(shown), frameon=False)
    return figure


def direction_matrices(summary: pd.DataFrame, metric_label: str) -> Figure:
    """Heatmaps of a directional metric (``"a->b"`` modality) per method.

    Args:
        summary: Columns ``method``, ``modality`` (``"source->target"``), ``mean``.
        metric_label: Colour-bar label.
    """
    with _style():
        methods = list(dict.fromkeys(summary["method"]))
        pairs = summary["modality"].str.split("->", n=1, expand=True)
        data = summary.assign(source=pairs[0], target=pairs[1])
        names = list(dict.fromkeys([*data["source"], *data["target"]]))
        figure = _figure(min(DOUBLE_COLUMN, 2.3 * len(methods) + 0.8), 2.3)
        axes = figure.subplots(1, len(methods), squeeze=False)[0]
        vmax = float(data["mean"].max())
        vmin = min(0.0, float(data["mean"].min()))  # 0 unless the metric goes negative
        image = None
        for ax, method in zip(axes, methods):
            part = data[data["method"] == method]
            grid = np.full((len(names), len(names)), np.nan)
            for row in part.itertuples():
                grid[names.index(str(row.source)), names.index(str(row.target))] = float(
                    row.mean  # type: ignore[arg-type]
                )
            image = ax.imshow(grid, vmin=vmin, vmax=max(vmax, vmin + 1e-9), cmap="viridis")
            for (i, j), value in np.ndenumerate(grid):
                if not np.isnan(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2g}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if value < 0.6 * vmax else "black",
                    )
            ax.set_xticks(range(len(names)), names, rotation=30)
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("target")
            ax.set_ylabel("source")
            ax.set_title(method)
            ax.grid(False)
        if image is not None:
            figure.colorbar(image, ax=list(axes), label=metric_label, shrink=0.8)
    return figure


def embedding_map(
    points: np.ndarray,
    labels: np.ndarray,
    modalities: Sequence[str],
    title: str,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """A 2-D map of embeddings coloured by label (left) and by modality (right).

    Args:
        points: ``[N, 2]`` map coordinates (t-SNE or UMAP of the embeddings).
        labels: ``[N]`` class labels.
        modalities: ``[N]`` modality of each point; a clear separation by modality on the
            right is the *modality gap* (Liang et al., NeurIPS 2022).
        title: Figure title (the method).
        class_names: The dataset's class names (legend by name), if it has them.

    Example:
        >>> points = np.random.default_rng(0).normal(size=(6, 2))
        >>> figure = embedding_map(points, np.array([0, 1, 0, 1, 0, 1]), ["a"] * 3 + ["b"] * 3, "m")
        >>> [ax.get_title() for ax in figure.axes]
        ['coloured by label', 'coloured by modality']
    """
    if points.ndim != 2 or points.shape[1] != 2 or len(points) != len(labels) != len(modalities):
        raise ValueError(
            f"points must be [N, 2] with N labels and modalities; got {points.shape}, "
            f"{len(labels)} labels, {len(modalities)} modalities."
        )
    with _style():
        figure = _figure(DOUBLE_COLUMN, 2.6)
        by_label, by_modality = figure.subplots(1, 2)
        names = list(dict.fromkeys(modalities))
        markers = ["o", "^", "s", "D", "v", "P"]
        modality_array = np.asarray(modalities)
        classes = np.unique(labels)
        cmap = mpl.colormaps["tab10"]
        for m, name in enumerate(names):
            rows = modality_array == name
            by_label.scatter(
                points[rows, 0],
                points[rows, 1],
                c=cmap(labels[rows] % 10),
                s=4,
                marker=markers[m % len(markers)],
                linewidths=0,
                alpha=0.8,
            )
        colours = _colours(names)
        for name in names:
            rows = modality_array == name
            by_modality.scatter(
                points[rows, 0],
                points[rows, 1],
                s=4,
                color=colours[name],
                label=name,
                linewidths=0,
                alpha=0.8,
            )
        _legend_classes(by_label, classes, cmap, class_names)
        by_modality.legend(
            frameon=False, markerscale=2.5, loc="upper left", bbox_to_anchor=(1.0, 1.0)
        )
        by_label.set_title("coloured by label")
        by_modality.set_title("coloured by modality")
        for ax in (by_label, by_modality):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
        figure.suptitle(title, fontsize=8)
    return figure


def _legend_classes(
    ax: Axes, classes: np.ndarray, cmap: Any, class_names: Sequence[str] | None = None
) -> None:
    if len(classes) > 10:
        return
    for c in classes:
        named = class_names is not None and 0 <= int(c) < len(class_names)
        text = str(class_names[int(c)]) if named and class_names is not None else str(int(c))
        ax.scatter([], [], color=cmap(int(c) % 10), s=8, label=text)
    ax.legend(
        frameon=False,
        title="label",
        markerscale=1.5,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
        fontsize=6,
    )
