"""Frozen-feature extraction and the standard evaluation of a multimodal representation."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader
from modalab.evaluation.probes import knn_predict, linear_probe
from modalab.evaluation.retrieval import (
    has_repeated_rows,
    retrieval_recall,
    retrieval_recall_multi_positive,
)

__all__ = [
    "EvalConfig",
    "FeatureSet",
    "MetricRecord",
    "evaluate_representations",
    "extract_features",
]

FUSED = "fused"


@dataclass
class MetricRecord:
    """One measured number.

    Attributes:
        metric: Metric name, e.g. ``"linear_probe_acc"``, ``"knn_acc"``, ``"recall@1"``.
        value: The value.
        modality: Modality (``"image"``), fused representation (``"fused"``) or a retrieval
            direction (``"image->text"``).
        condition: Free-form condition, e.g. ``"labels=0.1"``.
    """

    metric: str
    value: float
    modality: str = ""
    condition: str = ""


@dataclass
class FeatureSet:
    """Per-modality frozen features of one split.

    Attributes:
        features: Modality → ``[N, D]``.
        present: Modality → ``[N]`` bool.
        label: ``[N]`` labels as the learner sees them.
        label_observed: ``[N]`` bool.
        clean_label: ``[N]`` true labels (for evaluation).
        index: ``[N]`` sample ids.
        joint: Modality → ``[N, E]`` embeddings in the joint (projected) space used for
            cross-modal retrieval; defaults to ``features``.
    """

    features: dict[str, Tensor]
    present: dict[str, Tensor]
    label: Tensor
    label_observed: Tensor
    clean_label: Tensor
    index: Tensor
    joint: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.joint:
            self.joint = dict(self.features)

    def fused(self) -> Tensor:
        """Concatenation of the modality features (absent rows zeroed) and presence flags."""
        names = list(self.features)
        parts = [self.features[n] * self.present[n].unsqueeze(1).float() for n in names]
        flags = torch.stack([self.present[n] for n in names], dim=1).float()
        return torch.cat([*parts, flags], dim=1)


@torch.no_grad()
def extract_features(
    encode: Callable[[MultimodalBatch], dict[str, Tensor]],
    dataset: MultimodalTensorDataset,
    project: Callable[[dict[str, Tensor]], Mapping[str, Tensor]] | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
) -> FeatureSet:
    """Run ``encode`` once over ``dataset`` and collect its per-modality features on CPU.

    Args:
        encode: Maps a batch to ``{modality: [B, D]}`` (a method's ``representations``).
        dataset: The split.
        project: Optional map of the representations into the joint space (retrieval).
        batch_size: Batch size of the pass.
        device: Device the batches are moved to.

    Returns:
        The features, with the batch metadata.
    """
    feats: dict[str, list[Tensor]] = {}
    joint: dict[str, list[Tensor]] = {}
    for batch in make_loader(dataset, batch_size):
        out = encode(batch.to(device))
        for name, value in out.items():
            feats.setdefault(name, []).append(value.detach().float().cpu())
        if project is not None:
            for name, value in project(out).items():
                joint.setdefault(name, []).append(value.detach().float().cpu())
    return FeatureSet(
        features={k: torch.cat(v) for k, v in feats.items()},
        present={k: dataset.present[k] for k in feats},
        label=dataset.label,
        label_observed=dataset.label_observed,
        clean_label=dataset.clean_label,
        index=dataset.index,
        joint={k: torch.cat(v) for k, v in joint.items()},
    )


@dataclass
class EvalConfig:
    """Evaluation protocol settings.

    Attributes:
        label_fractions: Fractions of training labels for the linear probe.
        l2_grid: Probe penalties, selected on the validation split.
        knn_k: Neighbours of the kNN classifier.
        retrieval_ks: Recall cut-offs.
        batch_size: Batch size of feature extraction.
        probe_modalities: Evaluate each modality alone as well as fused.
        noisy_probe_losses: Losses (``ce``, ``gce``, ``sce``) of robust probes on the frozen
            fused features trained on the noisy training labels
            (:func:`modalab.evaluation.repair.noisy_probe_records`); empty: none.
        noisy_probe_forget_rate: With noisy probes, the fraction flagged as mislabelled and
            dropped by a small-loss cross-entropy probe (0: no such probe).
    """

    label_fractions: list[float] = field(default_factory=lambda: [1.0])
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])
    knn_k: int = 20
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    batch_size: int = 512
    probe_modalities: bool = True
    noisy_probe_losses: list[str] = field(default_factory=list)
    noisy_probe_forget_rate: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        bad = [f for f in self.label_fractions if not 0 < f <= 1]
        if not self.label_fractions or bad:
            raise ValueError(
                f"eval.label_fractions={list(self.label_fractions)} is invalid: expected a "
                "non-empty list of fractions in (0, 1]."
            )
        if not self.l2_grid or any(not v > 0 for v in self.l2_grid):
            raise ValueError(
                f"eval.l2_grid={list(self.l2_grid)} is invalid: expected positive penalties."
            )
        if self.knn_k < 1:
            raise ValueError(f"eval.knn_k={self.knn_k} is invalid: expected an integer >= 1.")
        if not self.retrieval_ks or any(k < 1 for k in self.retrieval_ks):
            raise ValueError(
                f"eval.retrieval_ks={list(self.retrieval_ks)} is invalid: expected integers >= 1."
            )
        bad_losses = [x for x in self.noisy_probe_losses if x not in ("ce", "gce", "sce")]
        if bad_losses:
            raise ValueError(
                f"eval.noisy_probe_losses={list(self.noisy_probe_losses)} is invalid: "
                "expected losses among ce, gce, sce."
            )
        if not 0 <= self.noisy_probe_forget_rate < 1:
            raise ValueError(
                f"eval.noisy_probe_forget_rate={self.noisy_probe_forget_rate} is invalid: "
                "expected a fraction in [0, 1)."
            )
        if self.batch_size < 1:
            raise ValueError(
                f"eval.batch_size={self.batch_size} is invalid: expected an integer >= 1."
            )


def _views(split: FeatureSet, modalities: Sequence[str]) -> dict[str, tuple[Tensor, Tensor]]:
    """``{view: (features, rows)}`` for each modality (its present rows) and for ``fused``."""
    views = {m: (split.features[m], torch.nonzero(split.present[m]).flatten()) for m in modalities}
    views[FUSED] = (split.fused(), torch.arange(split.label.shape[0]))
    return views


def evaluate_representations(
    train: FeatureSet,
    val: FeatureSet,
    test: FeatureSet,
    num_classes: int,
    config: EvalConfig | None = None,
    seed: int = 0,
) -> list[MetricRecord]:
    """Linear probe, kNN and retrieval of each modality and of the fused representation.

    The probe trains on training rows whose label is observed, selects its penalty on the
    validation split and reports accuracy against the *clean* test labels. Each modality is
    probed on the rows where it is present; the fused representation on all rows.

    Args:
        train: Training-split features.
        val: Validation-split features.
        test: Test-split features.
        num_classes: Number of classes.
        config: Protocol settings.
        seed: Seed of label subsets.

    Returns:
        One record per metric, modality/direction and condition.
    """
    config = config or EvalConfig()
    modalities = list(train.features) if config.probe_modalities else []
    tr, va, te = _views(train, modalities), _views(val, modalities), _views(test, modalities)
    records: list[MetricRecord] = []
    for view in tr:
        (x_tr, r_tr), (x_va, r_va), (x_te, r_te) = tr[view], va[view], te[view]
        r_tr = r_tr[train.label_observed[r_tr]]
        if min(r_tr.numel(), r_va.numel(), r_te.numel()) == 0:
            continue
        for fraction in config.label_fractions:
            result = linear_probe(
                x_tr[r_tr],
                train.label[r_tr],
                x_va[r_va],
                val.clean_label[r_va],
                x_te[r_te],
                test.clean_label[r_te],
                num_classes,
                l2_grid=config.l2_grid,
                label_fraction=fraction,
                seed=seed,
            )
            records.append(
                MetricRecord("linear_probe_acc", result.accuracy, view, f"labels={fraction:g}")
            )
        pred = knn_predict(x_tr[r_tr], train.label[r_tr], x_te[r_te], num_classes, config.knn_k)
        accuracy = float((pred == test.clean_label[r_te]).float().mean())
        records.append(MetricRecord("knn_acc", accuracy, view, f"k={config.knn_k}"))
    names = list(test.joint)
    for a, b in itertools.permutations(names, 2):
        if test.joint[a].shape[1] != test.joint[b].shape[1]:
            continue
        rows = test.present[a] & test.present[b]
        if int(rows.sum()) < 2:
            continue
        queries, gallery = test.joint[a][rows], test.joint[b][rows]
        recall = retrieval_recall(queries, gallery, config.retrieval_ks)
        for k, value in recall.items():
            records.append(MetricRecord(f"recall@{k}", value, f"{a}->{b}"))
        if has_repeated_rows(gallery):  # targets repeat: identical copies also count as hits
            multi = retrieval_recall_multi_positive(queries, gallery, config.retrieval_ks)
            for k, value in multi.items():
                records.append(MetricRecord(f"recall_mp@{k}", value, f"{a}->{b}"))
    return records
