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
#: How an absent modality's slot of the joint-space fused probe is filled (``eval.missing_fill``).
MISSING_FILLS = ("zeros", "substitute")


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

    def fused_joint(self, fill: str = "zeros") -> Tensor:
        """Concatenation of the joint-space embeddings (L2-normalised) and presence flags.

        In a contrastively aligned space (CLIP-style) the embedding of a present modality is
        an estimate of an absent one's: ``fill="substitute"`` puts the mean of the present
        modalities' normalised embeddings in an absent modality's slot (rows with no
        modality at all stay zero); ``fill="zeros"`` zeroes it, as :meth:`fused` does.

        Returns:
            ``[N, M * E + M]``.

        Raises:
            ValueError: If the joint embeddings differ in width (no shared space) or ``fill``
                is unknown.

        Example:
            >>> present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
            >>> emb = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
            ...        "b": torch.tensor([[0.0, 2.0], [0.0, 3.0]])}
            >>> fs = FeatureSet(emb, present, torch.zeros(2), torch.ones(2, dtype=torch.bool),
            ...                 torch.zeros(2), torch.arange(2))
            >>> fs.fused_joint("substitute")[1].tolist()
            [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        """
        if fill not in MISSING_FILLS:
            raise ValueError(f"fill={fill!r} is unknown; use one of {MISSING_FILLS}.")
        names = list(self.joint)
        if len({self.joint[n].shape[1] for n in names}) != 1:
            raise ValueError("The joint embeddings differ in width: no shared space to fill.")
        emb = {n: torch.nn.functional.normalize(self.joint[n].float(), dim=1) for n in names}
        mask = {n: self.present[n].unsqueeze(1).float() for n in names}
        parts = [emb[n] * mask[n] for n in names]
        if fill == "substitute":
            total = sum(parts, torch.zeros_like(parts[0]))
            count = sum((mask[n] for n in names), torch.zeros_like(mask[names[0]]))
            mean = total / count.clamp_min(1.0)
            parts = [p + (1 - mask[n]) * mean for p, n in zip(parts, names)]
        flags = torch.cat([mask[n] for n in names], dim=1)
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
        checkpoint: The weights the runner evaluates: ``best`` (the checkpoint with the best
            ``trainer.early_stopping.monitor``) or ``last`` (those of the last epoch trained).
        record_samples: Also record, per linear probe, the test-set size
            (``linear_probe_n_test``), the majority-class rate of its test labels
            (``linear_probe_majority_rate``) and the share of its most predicted class
            (``linear_probe_top_share``): what confidence intervals over test samples and the
            collapsed-probe mark of :mod:`modalab.evaluation.statistics` need (the correctness
            vector of an accuracy is, for the bootstrap, its count of correct samples out of
            ``n``).
        missing_fill: Extra fused probes in the joint (aligned) space, one per fill of an
            absent modality's slot: ``zeros`` (view ``fused_joint_zeros``) and/or
            ``substitute`` (view ``fused_joint_substitute``: the mean embedding of the
            present modalities stands in for the absent one, the natural fallback of a
            CLIP-style model). Empty: none. Needs joint embeddings of one width.
        probe_fit: ``stage``: probes are fitted on the downstream split as the scenarios'
            stages leave it (a scenario with ``stage=[test]`` gives a clean-fitted probe);
            ``both``: also probes fitted with every test-time obstacle applied to their
            training split (records with condition ``...,fit=obstacle``). Together with the
            method's own head (``head_acc``) a robustness result is then read three ways.
            A run without a test-time obstacle records none (they would equal its probes).
    """

    label_fractions: list[float] = field(default_factory=lambda: [1.0])
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1])
    knn_k: int = 20
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    batch_size: int = 512
    probe_modalities: bool = True
    noisy_probe_losses: list[str] = field(default_factory=list)
    noisy_probe_forget_rate: float = 0.0
    checkpoint: str = "best"
    record_samples: bool = False
    missing_fill: list[str] = field(default_factory=list)
    probe_fit: str = "stage"

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field."""
        if self.checkpoint not in ("best", "last"):
            raise ValueError(
                f"eval.checkpoint={self.checkpoint!r} is invalid: expected best | last."
            )
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
        bad_fills = [x for x in self.missing_fill if x not in MISSING_FILLS]
        if bad_fills:
            raise ValueError(
                f"eval.missing_fill={list(self.missing_fill)} is invalid: expected fills among "
                f"{', '.join(MISSING_FILLS)}."
            )
        if self.probe_fit not in ("stage", "both"):
            raise ValueError(
                f"eval.probe_fit={self.probe_fit!r} is invalid: expected stage or both."
            )
        if self.batch_size < 1:
            raise ValueError(
                f"eval.batch_size={self.batch_size} is invalid: expected an integer >= 1."
            )


def _views(
    split: FeatureSet, modalities: Sequence[str], fills: Sequence[str] = ()
) -> dict[str, tuple[Tensor, Tensor]]:
    """``{view: (features, rows)}`` per modality (its present rows), ``fused`` and joint fills."""
    views = {m: (split.features[m], torch.nonzero(split.present[m]).flatten()) for m in modalities}
    every = torch.arange(split.label.shape[0])
    views[FUSED] = (split.fused(), every)
    widths = {e.shape[1] for e in split.joint.values()}
    for fill in fills if len(split.joint) > 1 and len(widths) == 1 else ():
        views[f"{FUSED}_joint_{fill}"] = (split.fused_joint(fill), every)
    return views


def sample_records(
    predictions: Tensor, label: Tensor, modality: str, condition: str
) -> list[MetricRecord]:
    """Test-set size, majority-class rate and top predicted share of one probe's predictions.

    Args:
        predictions: ``[N]`` predicted classes.
        label: ``[N]`` true classes.
        modality: View the probe was fitted on.
        condition: Its condition (``labels=1``).

    Returns:
        Records ``linear_probe_n_test``, ``linear_probe_majority_rate`` and
        ``linear_probe_top_share``.

    Example:
        >>> import torch
        >>> rows = sample_records(torch.tensor([0, 0, 0, 1]), torch.tensor([0, 1, 1, 1]), "f", "")
        >>> [(r.metric, r.value) for r in rows]  # doctest: +NORMALIZE_WHITESPACE
        [('linear_probe_n_test', 4.0), ('linear_probe_majority_rate', 0.75),
         ('linear_probe_top_share', 0.75)]
    """
    n = int(label.numel())

    def top(x: Tensor) -> float:
        return float(torch.bincount(x.long()).max()) / n if n else float("nan")

    return [
        MetricRecord("linear_probe_n_test", float(n), modality, condition),
        MetricRecord("linear_probe_majority_rate", top(label), modality, condition),
        MetricRecord("linear_probe_top_share", top(predictions), modality, condition),
    ]


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
    fills = config.missing_fill
    tr, va, te = (_views(s, modalities, fills) for s in (train, val, test))
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
            if config.record_samples and result.predictions is not None:
                records += sample_records(
                    result.predictions, test.clean_label[r_te], view, f"labels={fraction:g}"
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


def obstacle_fitted_records(
    train: FeatureSet,
    val: FeatureSet,
    test: FeatureSet,
    num_classes: int,
    config: EvalConfig,
    seed: int = 0,
) -> list[MetricRecord]:
    """Linear probes fitted on ``train`` taken under the test-time obstacles.

    Args:
        train: Features of the downstream split with the test-time scenarios applied
            (:func:`modalab.scenarios.fitted_under_test`).
        val: Validation features (penalty selection).
        test: Test features.
        num_classes: Number of classes.
        config: Protocol settings (its label fractions, penalties and views).
        seed: Seed of label subsets.

    Returns:
        The ``linear_probe_acc`` records (and sample records when asked) of
        :func:`evaluate_representations`, their condition suffixed ``,fit=obstacle``.
    """
    records = evaluate_representations(train, val, test, num_classes, config, seed=seed)
    return [
        MetricRecord(r.metric, r.value, r.modality, f"{r.condition},fit=obstacle")
        for r in records
        if r.metric.startswith("linear_probe_")
    ]
