"""Evaluation protocols over frozen features: linear probe, kNN, cross-modal retrieval.

Each protocol takes plain tensors, so it serves after training (on cached features) and
during it (an online probe).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.evaluation.retrieval import retrieval_recall

__all__ = [
    "LinearProbeResult",
    "fit_logistic_regression",
    "knn_predict",
    "label_subset",
    "linear_probe",
    "retrieval_recall",
]


def fit_logistic_regression(
    features: Tensor,
    label: Tensor,
    num_classes: int,
    l2: float,
    max_iter: int = 200,
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression with an L2 penalty, solved by L-BFGS in float64.

    Minimises ``mean_i CE(W x_i + b, y_i) + l2 / 2 * ||W||^2`` (the bias is not penalised).
    This is scikit-learn's ``LogisticRegression(C=1 / (l2 * n))`` objective divided by ``n·C``.

    Args:
        features: ``[N, D]``.
        label: ``[N]`` in ``[0, num_classes)``.
        num_classes: Number of classes.
        l2: Penalty strength (> 0).
        max_iter: L-BFGS iterations.

    Returns:
        ``(weight [C, D], bias [C])`` in the dtype of ``features``.
    """
    x = features.detach().double()
    y = label.long()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight.t() + bias, y) + 0.5 * l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach().to(features.dtype), bias.detach().to(features.dtype)


def label_subset(label: Tensor, fraction: float, seed: int, num_classes: int) -> Tensor:
    """Indices of a class-stratified random subset holding ``fraction`` of the labels.

    At least one sample per class present in ``label`` is kept.

    Example:
        >>> label = torch.arange(100) % 4
        >>> rows = label_subset(label, 0.1, seed=0, num_classes=4)
        >>> len(rows), torch.bincount(label[rows]).tolist()
        (8, [2, 2, 2, 2])
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}.")
    if fraction == 1:
        return torch.arange(label.shape[0])
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(num_classes):
        rows = torch.nonzero(label == c).flatten()
        if rows.numel() == 0:
            continue
        k = max(1, round(fraction * rows.numel()))
        keep.append(rows[torch.randperm(rows.numel(), generator=generator)[:k]])
    return torch.sort(torch.cat(keep)).values


@dataclass
class LinearProbeResult:
    """Outcome of a linear probe.

    Attributes:
        accuracy: Test accuracy with the selected penalty.
        l2: The penalty selected on the validation split.
        val_accuracy: Validation accuracy of each penalty tried.
        num_train: Labelled training samples used.
        predictions: ``[Nt]`` predicted test classes of the selected penalty.
    """

    accuracy: float
    l2: float
    val_accuracy: dict[float, float]
    num_train: int
    predictions: Tensor | None = None


def _standardise(train: Tensor, *others: Tensor) -> list[Tensor]:
    mean = train.mean(0, keepdim=True)
    std = train.std(0, keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def linear_probe(
    train_features: Tensor,
    train_label: Tensor,
    val_features: Tensor,
    val_label: Tensor,
    test_features: Tensor,
    test_label: Tensor,
    num_classes: int,
    l2_grid: Sequence[float] = (1e-4, 1e-3, 1e-2, 1e-1),
    label_fraction: float = 1.0,
    seed: int = 0,
) -> LinearProbeResult:
    """Linear probe whose L2 penalty is chosen on the validation split, reported on test.

    Features are standardised with the statistics of the (labelled) training rows. The test
    split is never used for selection.

    Args:
        train_features: ``[N, D]`` training features.
        train_label: ``[N]``.
        val_features: ``[Nv, D]`` validation features (penalty selection).
        val_label: ``[Nv]``.
        test_features: ``[Nt, D]``.
        test_label: ``[Nt]``.
        num_classes: Number of classes.
        l2_grid: Penalties to try.
        label_fraction: Fraction of training labels used (class-stratified, seeded).
        seed: Seed of the label subset.

    Returns:
        The result with the test accuracy of the penalty that was best on validation.
    """
    rows = label_subset(train_label, label_fraction, seed, num_classes)
    x_train, x_val, x_test = _standardise(train_features[rows], val_features, test_features)
    y_train = train_label[rows]
    val_accuracy: dict[float, float] = {}
    fitted: dict[float, tuple[Tensor, Tensor]] = {}
    for l2 in l2_grid:
        w, b = fit_logistic_regression(x_train, y_train, num_classes, l2)
        fitted[l2] = (w, b)
        pred = (x_val @ w.t() + b).argmax(1)
        val_accuracy[l2] = float((pred == val_label).float().mean())
    best = max(l2_grid, key=lambda l2: (val_accuracy[l2], l2))
    w, b = fitted[best]
    predictions = (x_test @ w.t() + b).argmax(1)
    accuracy = float((predictions == test_label).float().mean())
    return LinearProbeResult(
        accuracy=accuracy,
        l2=best,
        val_accuracy=val_accuracy,
        num_train=int(rows.numel()),
        predictions=predictions,
    )


def knn_predict(
    train_features: Tensor,
    train_label: Tensor,
    query_features: Tensor,
    num_classes: int,
    k: int = 20,
    chunk_size: int = 2048,
) -> Tensor:
    """Majority vote of the ``k`` nearest training samples under cosine similarity.

    Ties between classes go to the smallest class id (as scikit-learn's
    ``KNeighborsClassifier``). Queries are processed in chunks to bound memory.

    Args:
        train_features: ``[N, D]``.
        train_label: ``[N]``.
        query_features: ``[Q, D]``.
        num_classes: Number of classes.
        k: Neighbours.
        chunk_size: Queries per chunk.

    Returns:
        Predicted labels ``[Q]``.
    """
    k = min(k, train_features.shape[0])
    bank = F.normalize(train_features, dim=1)
    out = []
    for start in range(0, query_features.shape[0], chunk_size):
        q = F.normalize(query_features[start : start + chunk_size], dim=1)
        idx = (q @ bank.t()).topk(k, dim=1).indices
        votes = F.one_hot(train_label[idx], num_classes).sum(dim=1)
        out.append(votes.argmax(dim=1))
    return torch.cat(out)
