"""Figures of a counterfactual table: Shapley bars, per-class heatmaps, swap-test matrices.

Each function takes the long table of :func:`~modalab.counterfactual.report.analyse` and
returns a :class:`matplotlib.figure.Figure` (nothing is shown or saved here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["class_heatmap", "shapley_bars", "swap_matrix"]


def _select(table: pd.DataFrame, analysis: str, statistic: str) -> pd.DataFrame:
    rows = table[(table["analysis"] == analysis) & (table["statistic"] == statistic)]
    if rows.empty:
        raise ValueError(
            f"The table has no {analysis!r} rows with statistic {statistic!r}; run that analysis."
        )
    return rows


def shapley_bars(table: pd.DataFrame, title: str = "") -> Figure:
    """Bar chart of each modality's mean Shapley value with its confidence interval.

    Example:
        >>> t = pd.DataFrame({"analysis": "shapley", "statistic": "shapley", "class": "all",
        ...                   "modality": ["a", "b"], "value": [0.5, 0.1], "ci_low": [0.4, 0.0],
        ...                   "ci_high": [0.6, 0.2], "metric": "accuracy"})
        >>> [float(bar.get_height()) for bar in shapley_bars(t).axes[0].patches]
        [0.5, 0.1]
    """
    rows = _select(table, "shapley", "shapley")
    rows = rows[rows["class"] == "all"]
    fig = Figure(figsize=(1.2 + 1.0 * len(rows), 3.2))
    ax = fig.add_subplot()
    values = rows["value"].to_numpy()
    error = np.stack([values - rows["ci_low"].to_numpy(), rows["ci_high"].to_numpy() - values])
    ax.bar(rows["modality"], values, yerr=np.nan_to_num(error), capsize=4, color="tab:blue")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(f"Shapley value ({rows['metric'].iloc[0]})")
    ax.set_title(title or "Modality Shapley values (95% CI)")
    fig.tight_layout()
    return fig


def _class_label(class_id: object, class_names: Sequence[str] | None) -> str:
    """The class's name where the data has names (``class_names[id]``), else its id."""
    text = str(class_id)
    if class_names and text.isdigit() and int(text) < len(class_names):
        return str(class_names[int(text)])
    return text


def class_heatmap(
    table: pd.DataFrame,
    analysis: str = "shapley",
    statistic: str = "shapley",
    title: str = "",
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Heatmap of a per-class statistic: classes × modalities.

    ``class_names`` (the dataset's ``info.class_names``) label the rows by name.
    """
    rows = _select(table, analysis, statistic)
    rows = rows[rows["class"] != "all"]
    grid = rows.pivot_table(index="class", columns="modality", values="value", sort=False)
    grid = grid.loc[sorted(grid.index, key=lambda c: int(c) if c.isdigit() else c)]
    fig = Figure(figsize=(1.5 + 1.1 * grid.shape[1], 1.0 + 0.45 * grid.shape[0]))
    ax = fig.add_subplot()
    limit = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), list(grid.columns))
    ax.set_yticks(range(grid.shape[0]), [_class_label(c, class_names) for c in grid.index])
    ax.set_ylabel("class")
    for (i, j), value in np.ndenumerate(grid.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    ax.set_title(title or f"{statistic} per class")
    fig.tight_layout()
    return fig


def swap_matrix(
    table: pd.DataFrame,
    modality: str,
    title: str = "",
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Matrix of ``P(prediction follows the swapped modality)`` per (original, donor) class.

    ``class_names`` (the dataset's ``info.class_names``) label the axes by name.
    """
    rows = _select(table, "swap", "follows_swapped")
    rows = rows[(rows["modality"] == modality) & (rows["class"] != "all")]
    if rows.empty:
        raise ValueError(f"No swap test of modality {modality!r} in the table.")
    classes = sorted(set(rows["class"]) | set(rows["target"]), key=int)
    grid = np.full((len(classes), len(classes)), np.nan)
    for _, r in rows.iterrows():
        grid[classes.index(r["class"]), classes.index(r["target"])] = r["value"]
    fig = Figure(figsize=(1.5 + 0.5 * len(classes), 1.2 + 0.5 * len(classes)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    labels = [_class_label(c, class_names) for c in classes]
    ax.set_xticks(range(len(classes)), labels, rotation=45 if class_names else 0)
    ax.set_yticks(range(len(classes)), labels)
    ax.set_xlabel(f"class of the swapped-in {modality}")
    ax.set_ylabel("class of the other modalities")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label="follows swapped")
    ax.set_title(title or f"Swap test: {modality}")
    fig.tight_layout()
    return fig
