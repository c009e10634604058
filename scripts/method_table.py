"""Compare every training method on a dataset and write its table into ``docs/methods.md``.

Runs each method × seed with ``modalab``'s runner (small data, few epochs, so that the whole
grid fits in minutes on a CPU), then tabulates linear-probe accuracy per modality and fused,
cross-modal retrieval Recall@1 (mean over directions) and training wall time per epoch, as
mean ± std over seeds. ``docs/methods.md`` holds one section per dataset; a run replaces its
own dataset's section and keeps the others.

    python scripts/method_table.py                       # the committed shapes table
    python scripts/method_table.py --seeds 0 1 2 3 4 --n-samples 2000 --epochs 10
    MODALAB_DATA=/data python scripts/method_table.py --data avmnist   # AV-MNIST (image+audio)

On a dataset without a modality a method needs (AV-MNIST has no text: CoCa's captioning), the
method's build error is recorded and the method is listed as not applicable with that error.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from modalab.evaluation.statistics import CellStats, format_cell
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import run

#: (row label, overrides) of the grid: every method, unimodal variants on ``image``.
GRID: list[tuple[str, list[str]]] = [
    ("supervised", ["method=supervised"]),
    ("clip", ["method=clip"]),
    ("simclr (across modalities)", ["method=simclr"]),
    ("simclr (image, 2 views)", ["method=simclr", "method.modality=image"]),
    ("slip (clip + simclr image)", ["method=slip", "method.modality=image"]),
    ("moco v2 (across, queues)", ["method=moco"]),
    ("moco v3 (image, 2 views)", ["method=moco", "method.version=v3", "method.modality=image"]),
    ("byol (across modalities)", ["method=byol"]),
    ("simsiam (across modalities)", ["method=simsiam"]),
    ("vicreg (across modalities)", ["method=vicreg"]),
    ("barlow (across modalities)", ["method=barlow"]),
    ("masked (tokens, patches, modality)", ["method=masked"]),
    ("fusion (co-attention, MLM + matching)", ["method=fusion"]),
    ("coca (clip + captioning)", ["method=coca"]),
]

#: AV-MNIST (image + audio): the same grid; the text-only parts of a method do not apply.
AVMNIST_LABELS = {
    "masked (tokens, patches, modality)": "masked (patches, modality)",
    "fusion (co-attention, MLM + matching)": "fusion (co-attention, masked features + matching)",
}
GRID_AVMNIST: list[tuple[str, list[str]]] = [
    (AVMNIST_LABELS.get(label, label), overrides) for label, overrides in GRID
]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of the comparison: its overrides, probe columns and page section."""

    name: str
    grid: list[tuple[str, list[str]]]
    probe_columns: list[str]
    title: str


DATASETS: dict[str, DatasetSpec] = {
    "shapes": DatasetSpec(
        "shapes", GRID, ["image", "text", "audio", "fused"], "the embedded `shapes` dataset"
    ),
    "avmnist": DatasetSpec(
        "avmnist", GRID_AVMNIST, ["image", "audio", "fused"], "AV-MNIST (image + spoken digit)"
    ),
}

PROBE_COLUMNS = DATASETS["shapes"].probe_columns


def data_overrides(dataset: str, n_samples: int) -> list[str]:
    """The overrides selecting ``dataset`` at ``n_samples`` samples (images for AV-MNIST)."""
    if dataset == "shapes":
        return [f"data.n_samples={n_samples}"]
    return ["data=avmnist", f"data.max_images={n_samples}"]


def run_grid(
    seeds: list[int], n_samples: int, epochs: int, output_dir: Path, dataset: str = "shapes"
) -> pd.DataFrame:
    """One row per (method, seed) with the figures of the table.

    A method whose build fails on the dataset (a modality it needs is absent) gets one row
    with ``error`` set to the message and no figures.
    """
    spec = DATASETS[dataset]
    rows: list[dict[str, object]] = []
    for index, (label, overrides) in enumerate(spec.grid):
        for seed in seeds:
            cfg = compose_config(
                [
                    *overrides,
                    *data_overrides(dataset, n_samples),
                    f"trainer.max_epochs={epochs}",
                    "trainer.batch_size=64",
                    "eval.l2_grid=[0.001,0.01]",
                    "trainer.enable_progress_bar=false",
                    f"seed={seed}",
                    f"output_dir={output_dir}",
                    f"run_name={index}-{label.split()[0]}-s{seed}",
                ]
            )
            try:
                result = run(cfg, quiet=True)
            except ConfigError as error:
                rows.append({"method": label, "seed": seed, "error": str(error)})
                print(f"{label:40s} not applicable: {error}", flush=True)
                break
            table = result.table()
            row: dict[str, object] = {"method": label, "seed": seed, "error": ""}
            probe = table[table.metric == "linear_probe_acc"]
            for column in spec.probe_columns:
                values = probe[probe.modality == column].value
                row[column] = float(values.iloc[0]) if len(values) else float("nan")
            recall = table[table.metric == "recall@1"].value
            row["R@1"] = float(recall.mean()) if len(recall) else float("nan")
            row["s/epoch"] = result.train_seconds / epochs
            row["threads"] = torch.get_num_threads()
            rows.append(row)
            print(
                f"{label:40s} seed {seed}: "
                + ", ".join(f"{k}={v:.3f}" for k, v in row.items() if isinstance(v, float)),
                flush=True,
            )
    return pd.DataFrame(rows)


def avmnist_setup(n_samples: int) -> tuple[dict[str, int], str]:
    """Split sizes and a description of ``data=avmnist data.max_images=n_samples``, as built."""
    from modalab.data.avmnist import make_avmnist

    info = make_avmnist(max_images=n_samples).info
    extra = info.extra
    protocol = str(extra["protocol"])
    encoders = ", ".join(f"{m}: {e}" for m, e in (info.encoders or {}).items()) or "default"
    pca = extra.get("pca") or {}
    kept = (
        f", images reduced to their leading principal components ({pca['rule']} "
        f"{pca['fraction']}: {pca['train']['components']} components on the train pool)"
        if "train" in pca
        else ""
    )
    noise = extra.get("noise_clips") or []
    kept += f", {len(noise)} ESC-10 noise clips added to the audio" if noise else ""
    sizes = dict(info.sizes)
    text = (
        f"data.protocol={protocol} (the default of `data=avmnist`){kept}; audio split "
        f"`{extra['audio_split']}`, test speakers {extra['speakers']['test']}; images: "
        f"{extra['image_protocol']}, a label-stratified subset of {n_samples} images in all "
        f"({sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,} train / val / test); "
        f"reference encoders ({encoders})"
    )
    return sizes, text


def table_lines(frame: pd.DataFrame, spec: DatasetSpec) -> list[str]:
    """The Markdown table: mean ± std per method, not-applicable methods with their reason."""
    columns = [*spec.probe_columns, "R@1", "s/epoch"]
    errors = frame.get("error", pd.Series([""] * len(frame))).fillna("")
    ran = frame[errors == ""]
    header = (
        "| method | "
        + " | ".join(
            [f"probe {c}" for c in spec.probe_columns] + ["R@1 (mean of directions)", "s / epoch"]
        )
        + " |"
    )
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for method in frame.method.drop_duplicates():
        failed = frame[(frame.method == method) & (errors != "")]
        if len(failed):
            reason = str(failed.error.iloc[0]).replace("|", "\\|")
            lines.append(f"| {method} | not applicable: {reason} |" + " |" * (len(columns) - 1))
            continue
        cells = [
            format_cell(CellStats.of(ran[ran.method == method][c]), 2 if c == "s/epoch" else 3)
            for c in columns
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def to_markdown(
    frame: pd.DataFrame,
    seeds: list[int],
    n_samples: int,
    epochs: int,
    seconds: float,
    dataset: str = "shapes",
) -> str:
    """The dataset's section of the page (between its begin / end markers)."""
    spec = DATASETS[dataset]
    if dataset == "shapes":
        n_test = round(0.25 * n_samples)  # the retrieval gallery: the test split
        command = "python scripts/method_table.py"
        setup = (
            f"Every method trained for {epochs} epochs on `data=shapes data.n_samples={n_samples}`"
        )
        labels = (
            "label = shape (4 classes; audio carries shape and size, image and text carry "
            "every factor)"
        )
        reading = [
            "This grid is deliberately tiny so that it runs in minutes on two CPU cores; it "
            "ranks nothing at convergence. Run it larger with `--n-samples` and `--epochs`.",
        ]
        retrieval = (
            "the six directions, expected under random tie-breaking (half the test captions are "
            "exact duplicates; a tie with the true match is not a hit) (— where a method trains "
            "no joint space: `supervised`, `masked` and the unimodal two-view recipes; for "
            "`fusion` it compares co-attention streams and is listed for completeness; "
        )
    else:
        command = (
            f"MODALAB_DATA=<data dir> python scripts/method_table.py --data avmnist "
            f"--n-samples {n_samples} --epochs {epochs}"
        )
        sizes, described = avmnist_setup(n_samples)  # one build gives the sizes and the text
        n_test = sizes["test"]
        setup = (
            f"Every method trained for {epochs} epochs on `data=avmnist "
            f"data.max_images={n_samples}`: {described}"
        )
        labels = "label = digit (10 classes; both modalities carry it)"
        reading = [
            "Text-only parts of a method do not apply: `masked` runs masked patch modelling "
            "(image and log-mel spectrogram, zero-padded to whole patches) and masked-modality "
            "prediction, `fusion` replaces masked language modelling by masked feature "
            "prediction. A method that needs a text modality fails to build with the error "
            "quoted in its row.",
        ]
        retrieval = (
            "the two directions, expected under random tie-breaking (— for `supervised`, "
            "`masked` and the unimodal two-view recipes, which train no joint space; for "
            "`fusion` the streams were never aligned). Pairs are drawn at random "
            "within a digit, so instance-level R@1 cannot exceed about 10/N; "
        )
    return "\n".join(
        [
            f"<!-- method_table:{dataset} begin -->",
            f"## {spec.title[0].upper()}{spec.title[1:]}",
            "",
            f"Generated by `{command}` (do not edit by hand). {setup} (batch 64, "
            f"CPU, probe penalty chosen on validation from 1e-3, 1e-2), seeds {seeds}; "
            "mean ± std over seeds. Linear-probe accuracy on the test "
            f"split per modality and on the fused (concatenated) representation, {labels}. "
            "R@1: cross-modal retrieval Recall@1 in the method's joint space, averaged over "
            f"{retrieval}chance is 1/{n_test} = {1 / n_test:.4f}). "
            "s / epoch: training wall time per epoch.",
            "",
            *reading,
            "",
            *table_lines(frame, spec),
            "",
            f"Total wall time of the grid: {seconds / 60:.1f} min on {platform.machine()} "
            f"({_threads(frame)}), torch {torch.__version__}.",
            f"<!-- method_table:{dataset} end -->",
        ]
    )


def _threads(frame: pd.DataFrame) -> str:
    """The torch threads the runs used, as recorded in their rows."""
    if "threads" not in frame or frame["threads"].isna().all():
        return "torch threads not recorded"
    counts = sorted({int(t) for t in frame["threads"].dropna()})
    return f"{'/'.join(map(str, counts))} torch threads"


def read_rows(path: Path) -> pd.DataFrame:
    """Per-seed rows written with ``--csv``, as :func:`run_grid` returned them."""
    frame = pd.read_csv(path)
    frame["error"] = frame["error"].fillna("").astype(str)
    return frame


PAGE_TITLE = "# Methods compared"


def update_page(page: str, section: str, dataset: str) -> str:
    """``page`` with ``dataset``'s section replaced by ``section`` (appended if absent)."""
    begin, end = f"<!-- method_table:{dataset} begin -->", f"<!-- method_table:{dataset} end -->"
    if not page.strip():
        page = PAGE_TITLE + "\n"
    if begin in page and end in page:
        head, rest = page.split(begin, 1)
        return head + section + rest.split(end, 1)[1]
    return page.rstrip("\n") + "\n\n" + section + "\n"


def main() -> None:
    """Run the grid and write the dataset's section of the page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=sorted(DATASETS), default="shapes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--n-samples", type=int, default=None, help="shapes samples / AV-MNIST images"
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/methods.md"))
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-seed rows")
    parser.add_argument(
        "--from-csv",
        type=Path,
        default=None,
        help="write the section from per-seed rows saved with --csv instead of running the grid "
        "(give the grid's --n-samples, --epochs, --seeds and --wall-minutes)",
    )
    parser.add_argument("--wall-minutes", type=float, default=None, help="with --from-csv")
    args = parser.parse_args()
    n_samples = args.n_samples or (1200 if args.data == "shapes" else 2000)
    epochs = args.epochs or (8 if args.data == "shapes" else 4)
    if args.from_csv is not None:
        if args.wall_minutes is None:
            parser.error("--from-csv needs --wall-minutes (the grid's total wall time)")
        frame = read_rows(args.from_csv)
        seconds = 60 * args.wall_minutes
    else:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            frame = run_grid(args.seeds, n_samples, epochs, Path(tmp), args.data)
        seconds = time.perf_counter() - start
    if args.csv is not None:
        frame.to_csv(args.csv, index=False)
    section = to_markdown(frame, args.seeds, n_samples, epochs, seconds, args.data)
    page = args.out.read_text() if args.out.exists() else ""
    args.out.write_text(update_page(page, section, args.data))
    print(f"wrote {args.out} ({seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
