import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from modalab.evaluation import (
    FeatureSet,
    evaluate_representations,
    fit_logistic_regression,
    knn_predict,
    label_subset,
    linear_probe,
    retrieval_recall,
)


def _blobs(n: int, d: int, classes: int, seed: int, spread: float = 1.5):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g) * spread
    y = torch.randint(classes, (n,), generator=g)
    x = centres[y] + torch.randn(n, d, generator=g)
    return x, y


def test_logistic_regression_matches_scikit_learn() -> None:
    x, y = _blobs(300, 6, 3, seed=0)
    l2 = 0.05
    w, b = fit_logistic_regression(x.double(), y, 3, l2)
    # Same objective: sklearn minimises C * sum CE + ||W||^2 / 2 with C = 1 / (l2 * n).
    ref = LogisticRegression(C=1 / (l2 * len(y)), tol=1e-10, max_iter=5000)
    ref.fit(x.double().numpy(), y.numpy())
    # Multinomial logits are defined up to a shared shift: compare centred logits.
    ours = (x.double() @ w.t() + b).numpy()
    theirs = ref.decision_function(x.double().numpy())
    ours -= ours.mean(1, keepdims=True)
    theirs -= theirs.mean(1, keepdims=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_linear_probe_selects_penalty_on_validation_and_matches_sklearn_accuracy() -> None:
    x, y = _blobs(600, 10, 4, seed=1, spread=0.6)
    tr, va, te = slice(0, 300), slice(300, 450), slice(450, 600)
    result = linear_probe(x[tr], y[tr], x[va], y[va], x[te], y[te], 4, l2_grid=[1e-3, 1e-1, 10.0])
    assert result.l2 == max(result.val_accuracy, key=lambda k: (result.val_accuracy[k], k))
    mean, std = x[tr].mean(0), x[tr].std(0)
    z = lambda t: ((t - mean) / std).numpy()  # noqa: E731
    ref = LogisticRegression(C=1 / (result.l2 * 300), max_iter=5000).fit(z(x[tr]), y[tr].numpy())
    assert result.accuracy == pytest.approx(ref.score(z(x[te]), y[te].numpy()), abs=1 / 150 + 1e-9)


def test_label_fraction_uses_a_stratified_subset() -> None:
    y = torch.arange(400) % 4
    rows = label_subset(y, 0.05, seed=3, num_classes=4)
    assert torch.bincount(y[rows]).tolist() == [5, 5, 5, 5]
    assert torch.equal(rows, label_subset(y, 0.05, seed=3, num_classes=4))
    with pytest.raises(ValueError, match="label fraction"):
        label_subset(y, 0.0, seed=0, num_classes=4)


def test_knn_matches_scikit_learn() -> None:
    x, y = _blobs(300, 5, 3, seed=4, spread=0.8)
    q, _ = _blobs(100, 5, 3, seed=5, spread=0.8)
    ours = knn_predict(x, y, q, num_classes=3, k=7, chunk_size=33)
    ref = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute").fit(
        x.numpy(), y.numpy()
    )
    assert (ours.numpy() == ref.predict(q.numpy())).mean() >= 0.99


def test_retrieval_recall_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(6)
    a = torch.randn(50, 8, generator=g)
    b = a + 0.8 * torch.randn(50, 8, generator=g)
    ours = retrieval_recall(a, b, ks=(1, 5, 10), chunk_size=7)
    sims = torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).t()
    for k in (1, 5, 10):
        hits = 0
        for i in range(50):
            order = sorted(range(50), key=lambda j: -float(sims[i, j]))
            hits += i in order[:k]
        assert ours[k] == pytest.approx(hits / 50)


def test_evaluate_representations_respects_present_and_clean_labels() -> None:
    x, y = _blobs(300, 4, 2, seed=7, spread=3.0)
    noise = torch.randn(300, 4, generator=torch.Generator().manual_seed(8))
    present_b = torch.ones(300, dtype=torch.bool)
    present_b[::3] = False

    def split(rows: slice) -> FeatureSet:
        return FeatureSet(
            features={"a": x[rows], "b": noise[rows]},
            present={"a": torch.ones_like(present_b[rows]), "b": present_b[rows]},
            label=y[rows],
            label_observed=torch.ones_like(present_b[rows]),
            clean_label=y[rows],
            index=torch.arange(300)[rows],
        )

    records = evaluate_representations(
        split(slice(0, 150)), split(slice(150, 200)), split(slice(200, 300)), num_classes=2
    )
    acc = {(r.metric, r.modality): r.value for r in records}
    assert acc[("linear_probe_acc", "a")] > 0.95  # informative modality
    assert abs(acc[("linear_probe_acc", "b")] - 0.5) < 0.2  # pure noise
    assert acc[("linear_probe_acc", "fused")] > 0.9
    assert ("recall@1", "a->b") in acc and ("recall@1", "b->a") in acc


def test_float32_probe_reaches_the_optimum_and_warm_start_keeps_it() -> None:
    x, y = _blobs(2000, 12, 5, seed=9, spread=0.5)
    x = (x - x.mean(0)) / x.std(0)
    l2 = 1e-3
    w, b = fit_logistic_regression(x, y, 5, l2)  # float32 features: float32 solve
    assert w.dtype == torch.float32

    def gradient(w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # The objective's gradient in float64 by autograd (independent of the closed form).
        w64 = w.double().requires_grad_(True)
        b64 = b.double().requires_grad_(True)
        xd = x.double()
        loss = torch.nn.functional.cross_entropy(xd @ w64.t() + b64, y) + 0.5 * l2 * (w64**2).sum()
        gw, gb = torch.autograd.grad(loss, (w64, b64))
        return torch.cat([gw.flatten(), gb]).abs().max()

    assert gradient(w, b) < 2e-5  # tolerance_grad=1e-5 plus float32 rounding
    # Warm-started from the solution of a neighbouring penalty: the same optimum.
    w_strong, b_strong = fit_logistic_regression(x, y, 5, 1e-1)
    w_warm, b_warm = fit_logistic_regression(x, y, 5, l2, init=(w_strong, b_strong))
    assert gradient(w_warm, b_warm) < 2e-5
    torch.testing.assert_close(x @ w_warm.t() + b_warm, x @ w.t() + b, atol=2e-3, rtol=0)


def test_small_cpu_probe_fits_on_one_thread_and_restores_the_count(monkeypatch) -> None:
    """A thin probe runs on one torch thread; a large one keeps the caller's; both restore it."""
    from modalab.evaluation import probes

    seen: list[int] = []
    minimize = probes.scipy.optimize.minimize

    def recording_minimize(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return minimize(*args, **kwargs)

    monkeypatch.setattr(probes.scipy.optimize, "minimize", recording_minimize)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x, y = torch.randn(60, 4), torch.arange(60) % 3
        probes.linear_probe(x, y, x, y, x, y, 3, l2_grid=(0.1,))
        assert seen == [1] and torch.get_num_threads() == 2
        monkeypatch.setattr(probes, "SINGLE_THREAD_WORK", 1)  # every probe counts as large
        probes.linear_probe(x, y, x, y, x, y, 3, l2_grid=(0.1,))
        assert seen == [1, 2] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
