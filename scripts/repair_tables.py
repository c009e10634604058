"""Results tables of the repair methods on ``shapes``, each against its baseline, ≥ 3 seeds.

Each experiment builds the adverse condition it targets directly on the training split (the
scenario layer is not needed), trains every variant with the same Lightning Trainer settings for
each seed, and prints a Markdown table of mean ± std over seeds. The per-run rows are also
written to ``--out`` as CSV (one row per experiment × variant × seed × metric × condition).

Usage::

    python scripts/repair_tables.py --seeds 0 1 2 --out repair_results.csv
    python scripts/repair_tables.py --only distill missing   # a subset of experiments

The same comparisons, as studies for ``modalab sweep`` with the scenario layer, are in
``studies/repair_*.yaml`` (for the embedded dataset and AV-MNIST).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import CSVLogger

from modalab.data.tensor_dataset import Splits, make_loader
from modalab.evaluation.features import EvalConfig, evaluate_representations, extract_features
from modalab.evaluation.missing import missing_rate_curve
from modalab.evaluation.noisy_labels import noisy_label_probe
from modalab.evaluation.probes import label_subset
from modalab.experiments.config import compose_config
from modalab.experiments.runner import build_data, build_encoders, build_method
from modalab.objectives.robust import small_loss_selection

warnings.filterwarnings("ignore")
BATCH = 32
ROWS: list[dict[str, Any]] = []


def splits_for(seed: int, modalities: Sequence[str], n: int) -> Splits:
    cfg = compose_config(
        [f"data.n_samples={n}", f"data.modalities=[{','.join(modalities)}]", f"data.seed={seed}"]
    )
    return build_data(dict(cfg.data))


def fit(
    method_overrides: Sequence[str],
    splits: Splits,
    seed: int,
    epochs: int,
    embed_dim: int = 32,
    log_dir: str | None = None,
) -> L.LightningModule:
    """Train one recipe exactly as ``modalab run method=...`` builds it (without a run dir)."""
    cfg = compose_config([*method_overrides, f"seed={seed}", f"model.embed_dim={embed_dim}"])
    plain: dict[str, Any] = {k: v for k, v in dict(cfg.method).items()}
    L.seed_everything(seed, verbose=False)
    encoder = build_encoders(dict(cfg.model), splits)
    method = build_method(plain, encoder, splits, embed_dim)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=CSVLogger(log_dir, name="", version="") if log_dir else False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
    )
    trainer.fit(
        method,
        make_loader(splits.train, BATCH, shuffle=True, drop_last=True, seed=seed),
        make_loader(splits.val, 256),
    )
    method.eval()
    return method


def probe(method: Any, splits: Splits, seed: int, fractions: Sequence[float]) -> pd.DataFrame:
    feats = [
        extract_features(method.representations, s, method.joint_embeddings)
        for s in (splits.train, splits.val, splits.test)
    ]
    cfg = EvalConfig(label_fractions=list(fractions), l2_grid=[1e-3, 1e-2, 1e-1], knn_k=10)
    records = evaluate_representations(*feats, splits.num_classes, cfg, seed=seed)
    return pd.DataFrame([r.__dict__ for r in records])


def record(
    experiment: str, variant: str, seed: int, metric: str, condition: str, value: float
) -> None:
    ROWS.append(
        dict(
            experiment=experiment,
            variant=variant,
            seed=seed,
            metric=metric,
            condition=condition,
            value=float(value),
        )
    )


def probe_value(
    table: pd.DataFrame, modality: str, condition: str, metric: str = "linear_probe_acc"
) -> float:
    hit = table[
        (table.metric == metric) & (table.modality == modality) & (table.condition == condition)
    ]
    return float(hit.value.iloc[0]) if len(hit) else float("nan")


# ------------------------------------------------------------------ 1. distillation
def exp_distill(seed: int) -> None:
    rich, poor = "text", "image"
    splits = splits_for(seed, [rich, poor], 1200)
    fractions = (0.01, 0.1)
    common = [
        "method=distill",
        f"method.teacher_modality={rich}",
        f"method.student_modality={poor}",
        "method.teacher_epochs=2",
    ]
    variants: dict[str, list[str]] = {
        "distill cosine": [*common, "method.objective=cosine"],
        "distill kd (T=4)": [*common, "method.objective=kd"],
        "distill contrastive (LiT)": [
            *common,
            "method.objective=contrastive",
            "method.temperature=0.1",
        ],
        "clip (no teacher)": ["method=clip"],
    }
    for name, overrides in variants.items():
        table = probe(fit(overrides, splits, seed, epochs=6), splits, seed, fractions)
        for f in fractions:
            record(
                "distill",
                name,
                seed,
                f"{poor}_probe_acc",
                f"labels={f:g}",
                probe_value(table, poor, f"labels={f:g}"),
            )
    # No transfer: the student trained end-to-end on the same few labels alone.
    for f in fractions:
        rows = label_subset(splits.train.label, f, seed, splits.num_classes)
        observed = torch.zeros(len(splits.train), dtype=torch.bool)
        observed[rows] = True
        poor_only = Splits(
            train=splits.train.replace(label_observed=observed).subset(
                torch.arange(len(splits.train))
            ),
            val=splits.val,
            test=splits.test,
            num_classes=splits.num_classes,
            info=splits.info,
        )
        poor_only = Splits(
            train=poor_only.train.replace(
                inputs={poor: poor_only.train.inputs[poor]},
                present={poor: poor_only.train.present[poor]},
            ),
            val=splits.val.replace(
                inputs={poor: splits.val.inputs[poor]}, present={poor: splits.val.present[poor]}
            ),
            test=splits.test.replace(
                inputs={poor: splits.test.inputs[poor]}, present={poor: splits.test.present[poor]}
            ),
            num_classes=splits.num_classes,
            info=splits.info,
        )
        method = fit(["method=supervised"], poor_only, seed, epochs=6)
        table = probe(method, poor_only, seed, (1.0,))  # probe on the same observed labels only
        record(
            "distill",
            "supervised on the few labels (no transfer)",
            seed,
            f"{poor}_probe_acc",
            f"labels={f:g}",
            probe_value(table, poor, "labels=1"),
        )


# ------------------------------------------------------------------ 2. missing modalities
def exp_missing(seed: int) -> None:
    splits = splits_for(seed, ["image", "audio"], 1200)
    rates = (0.0, 0.3, 0.6, 0.9)
    variants = {
        "no dropout (baseline)": ["method=supervised_robust"],
        "dropout 0.5": ["method=supervised_robust", "method.dropout_rate=0.5"],
        "dropout 0.5 + absent emb.": [
            "method=supervised_robust",
            "method.dropout_rate=0.5",
            "method.fill=absent",
        ],
        "dropout 0.5 + imputation": [
            "method=supervised_robust",
            "method.dropout_rate=0.5",
            "method.fill=impute",
        ],
    }
    for name, overrides in variants.items():
        method = fit(overrides, splits, seed, epochs=5)
        for point in missing_rate_curve(method, splits.test, rates, seed=seed):
            record(
                "missing",
                name,
                seed,
                "fused_acc",
                f"test missing rate={point.rate:g}",
                point.accuracy,
            )


# ------------------------------------------------------------------ 3. imbalance
def exp_imbalance(seed: int) -> None:
    splits = splits_for(seed, ["image", "audio"], 1200)
    variants = {
        "joint training (baseline)": ["method=ogm_ge", "method.modulation=none"],
        "OGM-GE (alpha=0.5)": ["method=ogm_ge"],
        "unimodal aux. losses (fixed 1.0)": ["method=grad_blend", "method.blend=fixed"],
        "gradient blending (OGB)": ["method=grad_blend"],
    }
    for name, overrides in variants.items():
        log_dir = tempfile.mkdtemp(prefix="repair-imbalance-")
        method = fit(overrides, splits, seed, epochs=5, log_dir=log_dir)
        curves = pd.read_csv(f"{log_dir}/metrics.csv")
        for m in ("image", "audio"):
            per_epoch = curves[["epoch", f"val/acc_{m}"]].dropna()
            for epoch, value in per_epoch.itertuples(index=False):
                record(
                    "imbalance: per-modality learning curves (val accuracy of the share)",
                    name,
                    seed,
                    f"{m} share",
                    f"epoch {int(epoch)}",
                    value,
                )
        table = probe(method, splits, seed, (1.0,))
        for m in ("image", "audio", "fused"):
            record(
                "imbalance", name, seed, "linear_probe_acc", m, probe_value(table, m, "labels=1")
            )
        batch = splits.test.full_batch()
        with torch.no_grad():
            logits = method(batch)
            shares = method.contributions(method.encoder(batch.inputs), batch.present)
        record(
            "imbalance",
            name,
            seed,
            "head_acc",
            "fused",
            (logits.argmax(1) == batch.clean_label).float().mean(),
        )
        for m, share in shares.items():
            record(
                "imbalance",
                name,
                seed,
                "head_acc",
                f"{m} share",
                (share.argmax(1) == batch.clean_label).float().mean(),
            )


# ------------------------------------------------------------------ 4. misaligned pairs
def misalign(
    splits: Splits, fraction: float, modality: str, seed: int
) -> tuple[Splits, torch.Tensor]:
    """Permute ``modality`` among a random ``fraction`` of training rows (broken pairs)."""
    n = len(splits.train)
    g = torch.Generator().manual_seed(seed + 7)
    rows = torch.randperm(n, generator=g)[: round(fraction * n)]
    shuffled = rows[torch.randperm(rows.numel(), generator=g)]
    x = splits.train.inputs[modality].clone()
    x[rows] = splits.train.inputs[modality][shuffled]
    broken = torch.zeros(n, dtype=torch.bool)
    broken[rows[rows != shuffled]] = True
    train = splits.train.replace(inputs={**splits.train.inputs, modality: x})
    return replace(splits, train=train), broken


def exp_misaligned(seed: int) -> None:
    clean = splits_for(seed, ["image", "text"], 1200)
    splits, broken = misalign(clean, 0.5, "text", seed)
    variants = {
        "InfoNCE (baseline)": ["method=clip_rince", "method.loss=infonce"],
        "RINCE q=0.5": ["method=clip_rince", "method.loss=rince", "method.q=0.5"],
        "RINCE q=1.0": ["method=clip_rince", "method.loss=rince", "method.q=1.0"],
        "InfoNCE + small-loss filter (keep 0.5)": [
            "method=clip_rince",
            "method.loss=infonce",
            "method.keep_fraction=0.5",
            "method.filter_warmup_epochs=2",
        ],
    }
    for name, overrides in variants.items():
        method = fit(overrides, splits, seed, epochs=6)
        table = probe(method, clean, seed, (0.1,))
        record(
            "misaligned",
            name,
            seed,
            "linear_probe_acc",
            "image, labels=0.1",
            probe_value(table, "image", "labels=0.1"),
        )
        record(
            "misaligned",
            name,
            seed,
            "linear_probe_acc",
            "text, labels=0.1",
            probe_value(table, "text", "labels=0.1"),
        )
        record(
            "misaligned",
            name,
            seed,
            "recall@1",
            "image->text",
            probe_value(table, "image->text", "", "recall@1"),
        )
        # Post hoc: would the small-loss rule flag the broken pairs of the training split?
        with torch.no_grad():
            losses, _ = method.pair_losses(splits.train.full_batch())
        flagged = ~small_loss_selection(losses, 0.5)
        hits = float((flagged & broken).sum())
        record(
            "misaligned",
            name,
            seed,
            "flag_precision",
            "train pairs",
            hits / max(float(flagged.sum()), 1),
        )
        record(
            "misaligned",
            name,
            seed,
            "flag_recall",
            "train pairs",
            hits / max(float(broken.sum()), 1),
        )


# ------------------------------------------------------------------ 5. wrong labels
def corrupt_labels(splits: Splits, rate: float, seed: int) -> tuple[Splits, torch.Tensor]:
    """Symmetric label noise: ``rate`` of training labels replaced by another class."""
    label = splits.train.label.clone()
    g = torch.Generator().manual_seed(seed + 11)
    noisy = torch.rand(label.shape[0], generator=g) < rate
    shift = torch.randint(1, splits.num_classes, (int(noisy.sum()),), generator=g)
    label[noisy] = (label[noisy] + shift) % splits.num_classes
    train = splits.train.replace(label=label, clean_label=splits.train.clean_label)
    return replace(splits, train=train), noisy


def exp_wrong_labels(seed: int) -> None:
    clean = splits_for(seed, ["image", "audio"], 1200)
    splits, noisy = corrupt_labels(clean, 0.4, seed)
    for name, overrides in {
        "end-to-end CE": ["method=supervised_robust"],
        "end-to-end GCE (q=0.7)": ["method=supervised_robust", "method.label_loss=gce"],
        "end-to-end SCE": ["method=supervised_robust", "method.label_loss=sce"],
    }.items():
        method = fit(overrides, splits, seed, epochs=5)
        batch = splits.test.full_batch()
        with torch.no_grad():
            acc = (method(batch).argmax(1) == batch.clean_label).float().mean()
        record("wrong_labels", name, seed, "test_acc", "40% symmetric noise", acc)
    ssl = fit(["method=clip"], splits, seed, epochs=5)  # labels unused
    feats = {
        name: extract_features(ssl.representations, s).fused()
        for name, s in (("train", splits.train), ("test", splits.test))
    }
    for name, kwargs in {
        "frozen CLIP + CE probe": {"loss": "ce"},
        "frozen CLIP + GCE probe": {"loss": "gce"},
        "frozen CLIP + SCE probe": {"loss": "sce"},
        "frozen CLIP + small-loss (forget 0.4) + CE": {"loss": "ce", "forget_rate": 0.4},
    }.items():
        out = noisy_label_probe(
            feats["train"],
            splits.train.label,
            feats["test"],
            splits.test.clean_label,
            splits.num_classes,
            noise_mask=noisy,
            seed=seed,
            **kwargs,  # type: ignore[arg-type]
        )
        record("wrong_labels", name, seed, "test_acc", "40% symmetric noise", out.accuracy)
        if "forget_rate" in kwargs:
            record("wrong_labels", name, seed, "flag_precision", "train labels", out.precision)
            record("wrong_labels", name, seed, "flag_recall", "train labels", out.recall)


EXPERIMENTS: dict[str, Callable[[int], None]] = {
    "distill": exp_distill,
    "missing": exp_missing,
    "imbalance": exp_imbalance,
    "misaligned": exp_misaligned,
    "wrong_labels": exp_wrong_labels,
}


def markdown(frame: pd.DataFrame) -> str:
    header = [frame.index.name or "", *map(str, frame.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for index, row in frame.iterrows():
        lines.append("| " + " | ".join([str(index), *map(str, row.tolist())]) + " |")
    return "\n".join(lines)


def tables(rows: pd.DataFrame) -> str:
    out = []
    for experiment, part in rows.groupby("experiment", sort=False):
        part = part.assign(column=part.metric + " @ " + part.condition)
        stats = part.groupby(["variant", "column"], sort=False).value.agg(["mean", "std", "count"])
        cells = stats.apply(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", axis=1).unstack("column")
        cells = cells[list(dict.fromkeys(part.column))].loc[list(dict.fromkeys(part.variant))]
        n = int(stats["count"].min())
        out.append(f"### {experiment} (mean ± std over {n} seeds)\n\n{markdown(cells)}\n")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=sorted(EXPERIMENTS), default=list(EXPERIMENTS))
    parser.add_argument("--out", default="repair_results.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    for name in args.only:
        for seed in args.seeds:
            t = time.perf_counter()
            EXPERIMENTS[name](seed)
            print(f"[{name} seed {seed}: {time.perf_counter() - t:.0f} s]", flush=True)
    rows = pd.DataFrame(ROWS)
    rows.to_csv(args.out, index=False)
    print(tables(rows))
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
