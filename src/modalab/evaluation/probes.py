"""Evaluation protocols over frozen features: linear probe, kNN, cross-modal retrieval.

Each protocol takes plain tensors, so it serves after training (on cached features) and
during it (an online probe).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import scipy.optimize
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


#: Below this many multiply-adds per product ``[N, D] x [D, C]`` a probe fit runs on one
#: thread: a thin product this small is dominated by thread start-up and synchronisation, and
#: a second thread only contends with the caller (``benchmarks/bench_probe.py``: 6,000 x 128
#: features, 10 classes, on 2 cores).
SINGLE_THREAD_WORK = 2**25


@contextmanager
def _probe_threads(work: int) -> Iterator[None]:
    """One torch thread while fitting a CPU probe whose products are too small to share."""
    before = torch.get_num_threads()
    if work >= SINGLE_THREAD_WORK or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_logistic_regression(
    features: Tensor,
    label: Tensor,
    num_classes: int,
    l2: float,
    max_iter: int = 200,
    tolerance_grad: float = 1e-5,
    init: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Multinomial logistic regression with an L2 penalty, solved by L-BFGS(-B).

    Minimises ``mean_i CE(W x_i + b, y_i) + l2 / 2 * ||W||^2`` (the bias is not penalised).
    This is scikit-learn's ``LogisticRegression(C=1 / (l2 * n))`` objective divided by ``n·C``,
    and the stopping rule is the same kind as scikit-learn's (``max |gradient| <= tol`` on this
    mean objective; scikit-learn's default ``tol`` is ``1e-4``).

    Loss and gradient are evaluated by torch on the features' device, in float32 unless
    ``features`` are float64 (then float64): float32 gradients of this objective are accurate
    to ~1e-7, far below ``tolerance_grad``, and the thin products ``[N, D] x [D, C]`` run about
    twice as fast as in float64. A fit on CPU whose product has fewer than
    :data:`SINGLE_THREAD_WORK` multiply-adds runs on one torch thread (restored afterwards).
    The default ``tolerance_grad=1e-5`` is ten times tighter than
    scikit-learn's default; ``benchmarks/bench_probe.py`` compares speed and accuracy.

    Args:
        features: ``[N, D]``.
        label: ``[N]`` in ``[0, num_classes)``.
        num_classes: Number of classes.
        l2: Penalty strength (> 0).
        max_iter: L-BFGS iterations.
        tolerance_grad: Stop when the largest absolute gradient entry is below this.
        init: ``(weight [C, D], bias [C])`` to start from (a warm start, e.g. the solution of
            a neighbouring penalty); zeros when ``None``.

    Returns:
        ``(weight [C, D], bias [C])`` in the dtype of ``features``.

    Example:
        >>> x = torch.tensor([[-2.0], [-1.0], [1.0], [2.0]])
        >>> w, b = fit_logistic_regression(x, torch.tensor([0, 0, 1, 1]), 2, l2=0.1)
        >>> bool(w[1, 0] > w[0, 0])
        True
    """
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    x = features.detach().to(dtype)
    y = label.long().to(x.device)
    n, dim = x.shape
    column = y.unsqueeze(1)
    one_hot = F.one_hot(y, num_classes).to(dtype)
    if init is None:
        start = np.zeros(num_classes * (dim + 1))
    else:
        flat = torch.cat([init[0].detach().flatten(), init[1].detach().flatten()])
        start = flat.double().cpu().numpy()

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # Loss and gradient in closed form (softmax minus one-hot): two thin matrix products
        # per evaluation, no autograd graph.
        params = torch.from_numpy(theta).to(device=x.device, dtype=dtype)
        weight, bias = params[: num_classes * dim].view(num_classes, dim), params[-num_classes:]
        logits = torch.addmm(bias, x, weight.t())
        # logits - logsumexp: on [N, C] with few classes ~1.4x faster than log_softmax(dim=1)
        # on CPU (one 55,000 x 10 product, one thread), equal to ~1e-9.
        log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
        # The loss summed in float64: the line search compares losses whose difference near
        # the optimum is below float32 resolution of the sum.
        loss = -log_prob.gather(1, column).sum(dtype=torch.float64) / n
        loss = loss + 0.5 * l2 * weight.pow(2).sum(dtype=torch.float64)
        residual = log_prob.exp_().sub_(one_hot).mul_(1.0 / n)
        grad_weight = torch.addmm(weight, residual.t(), x, beta=l2)
        grad = torch.cat([grad_weight.flatten(), residual.sum(dim=0)])
        return float(loss), grad.double().cpu().numpy()

    # scipy's L-BFGS-B, as scikit-learn's lbfgs solver: the same stopping rule (``gtol`` on
    # the largest gradient entry), few line-search evaluations, and no torch.optim start-up.
    work = n * dim * num_classes if x.device.type == "cpu" else SINGLE_THREAD_WORK
    with _probe_threads(work):
        solution = scipy.optimize.minimize(
            loss_and_gradient,
            start,
            jac=True,
            method="L-BFGS-B",
            options={
                "maxiter": max_iter,
                "gtol": tolerance_grad,
                "ftol": 64 * np.finfo(float).eps,
            },
        ).x
    theta = torch.from_numpy(solution).to(device=features.device, dtype=features.dtype)
    return theta[: num_classes * dim].view(num_classes, dim).clone(), theta[-num_classes:].clone()


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
    split is never used for selection. The penalties are fitted as a warm-started
    regularisation path (strongest first), in float32 unless the features are float64.

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
    previous: tuple[Tensor, Tensor] | None = None
    # A regularisation path: strongest penalty first, each fit warm-started from the last
    # (the solutions of neighbouring penalties are close, so each needs few iterations).
    for l2 in sorted(set(l2_grid), reverse=True):
        w, b = fit_logistic_regression(x_train, y_train, num_classes, l2, init=previous)
        fitted[l2] = previous = (w, b)
        pred = (x_val @ w.t() + b).argmax(1)
        val_accuracy[l2] = float((pred == val_label).float().mean())
    val_accuracy = {l2: val_accuracy[l2] for l2 in l2_grid}
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
