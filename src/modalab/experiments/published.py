"""The AV-MNIST baseline table: modalab's numbers from a results store beside published ones.

``studies/avmnist_baselines.yaml`` writes its runs' rows to a store; :func:`baseline_table`
reads it and prints, per method, the test accuracy of its linear probes and, for the supervised
methods, of their own classification head (what MultiBench reports) — mean ± std over seeds,
and the number of seeds — beside the number MultiBench published for the same method,
each with its source. Given the sweep's run directories (``--runs``), it also says how each
method's runs ended: the epoch evaluated (the best validation checkpoint) against the
epochs trained, and how many stopped early rather than at ``trainer.max_epochs`` — the
answer to "was it trained to convergence?". A published number that could not be found in
a source is written "not found" (never recalled from memory), and :data:`SETUP_DIFFERENCES`
states line by line how modalab's setup differs from the published one.

    python -m modalab.experiments.published results/avmnist_baselines \
        [--runs runs/avmnist_baselines] [--markdown-out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modalab.evaluation.statistics import CellStats, format_cell
from modalab.experiments.collect import find_run_dirs
from modalab.experiments.store import ResultsStore

__all__ = [
    "PUBLISHED",
    "SETUP_DIFFERENCES",
    "PublishedNumber",
    "baseline_table",
    "main",
    "training_cell",
]


@dataclass(frozen=True)
class PublishedNumber:
    """One published AV-MNIST number (``value`` ``None``: not found) and its source."""

    method: str
    published_method: str
    value: float | None
    source: str


#: Study method label → the MultiBench method it corresponds to and its published accuracy.
#: The tools available (repository search, stored pages) returned the MultiBench paper's
#: abstract pages but not its results tables: every paper number is "not found". The one
#: number found is a result comment in MultiBench's own repository (unimodal audio, a
#: deprecated example with a 3-channel LeNet), quoted with its setup.
PUBLISHED: dict[str, PublishedNumber] = {
    label: PublishedNumber(label, name, value, source)
    for label, name, value, source in (
        (
            "image_only",
            "unimodal image (LeNet)",
            None,
            "MultiBench examples/multimedia/avmnist_unimodal_0.py (code; no number in the repo)",
        ),
        (
            "audio_only",
            "unimodal audio, LeNet(1, 3, 5) + Linear(96, 10), SGD, 100 epochs (one run)",
            0.4183,
            "result comment '# Testing: # acc: 0.4183' in MultiBench deprecated/examples_robust/"
            "multimedia/avmnist_pretraining_robust.py (commit aa65957; modalnum=1: audio); "
            "3 channels, not the 6 of avmnist_unimodal_1.py; no paper table found",
        ),
        (
            "late_fusion",
            "LF (late fusion, Concat + MLP)",
            None,
            "MultiBench examples/multimedia/avmnist_simple_late_fusion.py (code; no number)",
        ),
        ("xattn_fusion", "EF (early fusion): no modalab counterpart", None, "not found"),
        ("clip", "none (MultiBench has no CLIP on AV-MNIST)", None, "not found"),
        ("simclr_x", "none (MultiBench has no SimCLR on AV-MNIST)", None, "not found"),
        ("vicreg", "none (MultiBench has no VICReg on AV-MNIST)", None, "not found"),
        ("random_init", "none (lower bound)", None, "not applicable"),
    )
}

#: How modalab's study differs from MultiBench's AV-MNIST setup, one line each.
SETUP_DIFFERENCES: tuple[str, ...] = (
    "Data: built by modalab from MNIST + FSDD + ESC-10 (data.protocol=multibench) following "
    "slyviacassell/_MFAS datasets/avmnist_gen.py, not MultiBench's distributed .npy files "
    "(unavailable: its datasets/avmnist/README.md points to a private folder).",
    "FSDD: today's 6 speakers (the source used 4: jackson, nicolas, theo, yweweler); test "
    "speaker yweweler as in the source, validation speaker george (not in the source; "
    "MultiBench validates on training audio), training speakers the other 4.",
    "Noise: one ESC-10 clip per category (10 categories, 8 train / 2 test) instead of one "
    "ESC-50 clip per category (50, 40 train / 10 test); each recording is mixed with at most "
    "data.noise_variants=3 clips (the source cycles 40 clips over the samples).",
    "Image PCA: data.image_pca=energy keeps the leading components up to 25% of the variance "
    "(the later generator: Yanis-Gerst/_MFAS c08a277, slyviacassell/_MFAS 8d582c1); "
    "slyviacassell/_MFAS 8e82a0a, whose audio steps modalab follows, keeps 196 components "
    "(25% of the components). Which one produced MultiBench's files is not documented.",
    "Audio scale: log of the power spectral density, standardised with the training "
    "spectrograms; MultiBench divides its stored spectrograms by 255 (get_data.py), whose "
    "stored scale is not documented.",
    "Encoders: MultiBench's LeNet(1, 6, 3) image / LeNet(1, 6, 5) audio encoders (`lenet`, "
    "the default of data=avmnist), each followed by a linear map to model.embed_dim=128 that "
    "MultiBench's encoders do not have; head Linear(256, 128)-ReLU-Linear(128, 10) instead of "
    "MLP(240, 100, 10).",
    "Training: AdamW lr 2e-3 with warm-up + cosine, batch 256, at most 20 epochs with early "
    "stopping on validation loss, instead of SGD lr 0.1, weight decay 1e-4, gradient clipping "
    "8, 30 epochs, batch 40 with the best validation-accuracy checkpoint "
    "(avmnist_simple_late_fusion.py, training_structures/Supervised_Learning.py).",
    "Evaluation: test accuracy of a linear probe (L2 chosen on validation) on the frozen "
    "representation, for every method; MultiBench reports its supervised heads' accuracy.",
)


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return f"{low}" if low == high else f"{low}–{high}"


def training_cell(trainings: Sequence[dict[str, object]]) -> str:
    """How a method's runs ended, from their ``metrics.json`` ``training`` records.

    The evaluated epoch (1-based, as the epochs are counted) and the epochs trained, each as a
    range over seeds, then how many runs early stopping ended before ``max_epochs``; runs
    trained for 0 epochs (the random-encoder bound) are evaluated with their initial weights.

    Example:
        >>> runs = [
        ...     {"evaluated_epoch": 18, "epochs_trained": 20, "stopped_early": False},
        ...     {"evaluated_epoch": 7, "epochs_trained": 12, "stopped_early": True},
        ... ]
        >>> training_cell(runs)
        '8–19 / 12–20, early 1/2'
        >>> training_cell([{"evaluated_epoch": 0, "epochs_trained": 0, "stopped_early": False}])
        'initial weights / 0, early 0/1'
        >>> training_cell([])
        '—'
    """
    if not trainings:
        return "—"
    trained = [int(str(t["epochs_trained"])) for t in trainings]
    evaluated = [int(str(t["evaluated_epoch"])) + 1 for t in trainings if t["epochs_trained"]]
    if not evaluated:
        return f"initial weights / 0, early 0/{len(trainings)}"
    early = sum(bool(t.get("stopped_early")) for t in trainings)
    return f"{_span(evaluated)} / {_span(trained)}, early {early}/{len(trainings)}"


def _trainings(runs: str | Path, run_ids: dict[str, set[str]]) -> dict[str, list[dict]]:
    """Method → the ``training`` records of its finished runs found below ``runs``."""
    finished = {p.name: p for p in find_run_dirs(runs)[0]}
    found: dict[str, list[dict]] = {}
    for method, ids in run_ids.items():
        for run in sorted(ids & finished.keys()):
            training = json.loads((finished[run] / "metrics.json").read_text()).get("training")
            if training and "evaluated_epoch" in training:
                found.setdefault(method, []).append(training)
    return found


def baseline_table(store: str | Path, study: str = "", runs: str | Path | None = None) -> str:
    """The Markdown table of a baselines store (one row per method, probe per modality).

    Args:
        store: The results store folder.
        study: Only rows of this study (empty: all).
        runs: The sweep's run directories (the study's ``output_dir``): adds the column
            "epochs: evaluated / trained" (:func:`training_cell`). ``None``: no such column.

    Returns:
        Markdown: the table, then the setup differences.

    Raises:
        ValueError: If the store holds no ``linear_probe_acc`` row.
    """
    frame = ResultsStore(store).read()
    if study:
        frame = frame[frame["study"] == study]
    rows = frame[frame["metric"] == "linear_probe_acc"]
    per_seed = rows.groupby(["method", "modality", "seed"])["value"].mean()
    cells = {key: CellStats.of(part) for key, part in per_seed.groupby(level=[0, 1])}
    if not cells:
        raise ValueError(
            f"The store {store} holds no linear_probe_acc rows; run the study first "
            "(modalab sweep studies/avmnist_baselines.yaml)."
        )
    heads = frame[frame["metric"] == "head_acc"]
    heads = heads[heads["condition"].fillna("") == ""]  # the clean test set, not a stress test
    head_cells = {
        method: CellStats.of(part)
        for method, part in heads.groupby(["method", "seed"])["value"].mean().groupby(level=0)
    }
    modalities = [m for m in ("image", "audio", "fused") if m in {k[1] for k in cells}]
    known = list(PUBLISHED)
    methods = sorted({k[0] for k in cells}, key=lambda m: (known.index(m) if m in known else 99, m))
    trainings = None
    if runs is not None:
        ids = {method: set(part["run_id"]) for method, part in rows.groupby("method")}
        trainings = _trainings(runs, ids)
    header = (
        "| method | "
        + " | ".join(f"probe acc ({m})" for m in modalities)
        + " | head acc | seeds"
        + (" | epochs: evaluated / trained" if trainings is not None else "")
        + " | MultiBench method | published acc | source |"
    )
    lines = [header, "|" + "---|" * (len(modalities) + 6 + (trainings is not None))]
    for method in methods:
        found = [cells.get((method, m), CellStats.of([])) for m in modalities]
        seeds = max(c.n for c in found)
        published = PUBLISHED.get(method)
        value = (
            "not found"
            if published is None or published.value is None
            else f"{published.value:.3f}"
        )
        name = published.published_method if published else "—"
        source = published.source if published else "—"
        lines.append(
            f"| {method} | "
            + " | ".join(format_cell(c) for c in found)
            + f" | {format_cell(head_cells[method]) if method in head_cells else '—'}"
            + f" | {seeds}"
            + (f" | {training_cell(trainings.get(method, []))}" if trainings is not None else "")
            + f" | {name} | {value} | {source} |"
        )
    if trainings is not None:
        lines += [
            "",
            "Epochs: the epoch evaluated (the best validation checkpoint, counted from 1) and "
            "the epochs trained, as ranges over seeds; early k/n: runs that early stopping "
            "ended before trainer.max_epochs (the others ran to it, their learning rate "
            "annealed to its floor by the schedule).",
        ]
    lines += ["", "Setup differences from MultiBench:", ""]
    lines += [f"{i}. {line}" for i, line in enumerate(SETUP_DIFFERENCES, 1)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print (or write) the baseline table of a store; exit 1 with the reason if it is empty."""
    parser = argparse.ArgumentParser(prog="python -m modalab.experiments.published")
    parser.add_argument("store", help="results store folder, e.g. results/avmnist_baselines")
    parser.add_argument("--study", default="", help="only rows of this study")
    parser.add_argument(
        "--runs",
        default=None,
        help="the sweep's run directories (e.g. runs/avmnist_baselines): add the epochs "
        "evaluated / trained and how many runs stopped early",
    )
    parser.add_argument("--markdown-out", default="", help="write the table to this file")
    args = parser.parse_args(argv)
    try:
        table = baseline_table(args.store, args.study, args.runs)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.markdown_out:
        Path(args.markdown_out).write_text(table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
