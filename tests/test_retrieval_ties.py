"""Tie-aware Recall@K against brute force over tie-breaking orders (exact and Monte-Carlo)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from modalab.evaluation.retrieval import (
    has_repeated_rows,
    retrieval_recall,
    retrieval_recall_multi_positive,
)


def _sims(queries: torch.Tensor, gallery: torch.Tensor) -> list[list[float]]:
    # Similarities computed row by row in float64: ties are exact by construction.
    q = F.normalize(queries.double(), dim=1)
    g = F.normalize(gallery.double(), dim=1)
    return [[float(q[i] @ g[j]) for j in range(g.shape[0])] for i in range(q.shape[0])]


def _rounded(x: float) -> float:
    return round(x, 9)


def _exact_expected(
    queries: torch.Tensor, gallery: torch.Tensor, ks: tuple[int, ...], multi: bool
) -> dict[int, float]:
    """Average over every permutation of the gallery, sorted stably by similarity."""
    sims = _sims(queries, gallery)
    rows = [
        tuple(_rounded(v) for v in F.normalize(gallery.double(), dim=1)[j].tolist())
        for j in range(gallery.shape[0])
    ]
    n = gallery.shape[0]
    perms = list(itertools.permutations(range(n)))
    out = {}
    for k in ks:
        total = 0.0
        for i in range(n):
            positives = {j for j in range(n) if rows[j] == rows[i]} if multi else {i}
            hits = 0
            for perm in perms:  # a random tie-break = a stable sort of a random order
                order = sorted(perm, key=lambda j: -_rounded(sims[i][j]))
                hits += bool(positives & set(order[:k]))
            total += hits / len(perms)
        out[k] = total / n
    return out


def _monte_carlo(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    ks: tuple[int, ...],
    multi: bool,
    draws: int,
    seed: int,
) -> dict[int, float]:
    sims = _sims(queries, gallery)
    rows = [
        tuple(_rounded(v) for v in F.normalize(gallery.double(), dim=1)[j].tolist())
        for j in range(gallery.shape[0])
    ]
    n = gallery.shape[0]
    rng = random.Random(seed)
    out = dict.fromkeys(ks, 0.0)
    for i in range(n):
        positives = {j for j in range(n) if rows[j] == rows[i]} if multi else {i}
        for _ in range(draws):
            perm = list(range(n))
            rng.shuffle(perm)
            order = sorted(perm, key=lambda j: -_rounded(sims[i][j]))
            for k in ks:
                out[k] += bool(positives & set(order[:k]))
    return {k: v / (n * draws) for k, v in out.items()}


def _with_duplicates(n_unique: int, copies: list[int], dim: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n_unique, dim, generator=g)
    return torch.cat([base[i : i + 1].repeat(c, 1) for i, c in enumerate(copies)])


def test_tied_gallery_exact_enumeration_both_directions() -> None:
    # 6 items: targets repeat (3 copies of one caption, 2 of another), queries unique.
    text = _with_duplicates(3, [3, 2, 1], dim=3, seed=0)
    image = text + 0.6 * torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    ks = (1, 2, 3)
    for queries, gallery in ((image, text), (text, image)):
        for multi in (False, True):
            fn = retrieval_recall_multi_positive if multi else retrieval_recall
            ours = fn(queries, gallery, ks=ks, chunk_size=4)
            ref = _exact_expected(queries, gallery, ks, multi)
            for k in ks:
                assert ours[k] == pytest.approx(ref[k], abs=1e-9), (multi, k)


def test_all_identical_gallery_closed_form() -> None:
    gallery = torch.ones(5, 4)
    queries = torch.randn(5, 4, generator=torch.Generator().manual_seed(2))
    ours = retrieval_recall(queries, gallery, ks=(1, 2, 5))
    assert ours == pytest.approx({1: 1 / 5, 2: 2 / 5, 5: 1.0})
    assert retrieval_recall(queries, gallery, ks=(1,), ties="optimistic") == {1: 1.0}
    assert retrieval_recall(queries, gallery, ks=(4,), ties="pessimistic") == {4: 0.0}
    assert retrieval_recall_multi_positive(queries, gallery, ks=(1,)) == {1: 1.0}


def test_monte_carlo_larger_case_with_duplicates_both_directions() -> None:
    copies = [4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1]
    text = _with_duplicates(len(copies), copies, dim=4, seed=3)
    n = text.shape[0]
    image = text + 0.9 * torch.randn(n, 4, generator=torch.Generator().manual_seed(4))
    ks = (1, 5)
    for queries, gallery in ((image, text), (text, image)):
        for multi in (False, True):
            fn = retrieval_recall_multi_positive if multi else retrieval_recall
            ours = fn(queries, gallery, ks=ks, chunk_size=5)
            ref = _monte_carlo(queries, gallery, ks, multi, draws=400, seed=5)
            for k in ks:
                # standard error of a mean of n*400 Bernoullis is <= 0.5/sqrt(8000) ~ 0.0056
                assert ours[k] == pytest.approx(ref[k], abs=0.025), (multi, k)


def test_no_ties_equals_strict_rank_and_variants_agree() -> None:
    g = torch.Generator().manual_seed(6)
    a = torch.randn(40, 8, generator=g)
    b = a + 0.8 * torch.randn(40, 8, generator=g)
    ks = (1, 5, 10)
    assert not has_repeated_rows(b)
    random_ = retrieval_recall(a, b, ks=ks, chunk_size=7)
    assert random_ == retrieval_recall(a, b, ks=ks, ties="optimistic")
    assert random_ == retrieval_recall(a, b, ks=ks, ties="pessimistic")
    assert retrieval_recall_multi_positive(a, b, ks=ks) == pytest.approx(random_)


def test_duplicates_lower_recall_below_optimistic() -> None:
    text = _with_duplicates(2, [10, 10], dim=2, seed=7)
    image = text.clone()
    assert has_repeated_rows(text)
    assert retrieval_recall(image, text, ks=(1,), ties="optimistic") == {1: 1.0}
    assert retrieval_recall(image, text, ks=(1,)) == pytest.approx({1: 0.1})
    assert retrieval_recall_multi_positive(image, text, ks=(1,)) == {1: 1.0}


def test_misaligned_inputs_rejected() -> None:
    with pytest.raises(ValueError, match="aligned"):
        retrieval_recall(torch.zeros(3, 2), torch.zeros(4, 2))


def test_run_reports_tie_aware_recall_from_its_embeddings(tmp_path: Path) -> None:
    """The R@1 a run prints equals a brute-force tie-aware recount from its test embeddings."""
    from modalab.evaluation.features import extract_features
    from modalab.experiments.config import compose_config
    from modalab.experiments.rundir import load_run
    from modalab.experiments.runner import run

    overrides = [
        "data.n_samples=500",
        "trainer.max_epochs=1",
        "trainer.batch_size=64",
        "trainer.enable_progress_bar=false",
        "eval.l2_grid=[0.01]",
        f"output_dir={tmp_path}",
        "run_name=tiny",
    ]
    result = run(compose_config(overrides), quiet=True)
    reported = {(r.metric, r.modality): r.value for r in result.metrics}
    loaded = load_run(result.run_dir)
    test = extract_features(
        loaded.method.representations,  # type: ignore[arg-type]
        loaded.splits.test,
        loaded.method.joint_embeddings,  # type: ignore[arg-type]
    )
    image, text = test.joint["image"].double(), test.joint["text"].double()
    assert has_repeated_rows(text)  # shapes captions repeat: the tie case is exercised
    sims = (F.normalize(image, dim=1) @ F.normalize(text, dim=1).t()).numpy()
    keys = [tuple(row) for row in text.numpy().tolist()]  # identical rows: identical sims
    n = sims.shape[0]
    expected, optimistic, multi = 0.0, 0.0, 0.0
    for i in range(n):
        s = float(sims[i, i])
        row = [float(v) for v in sims[i]]
        greater = sum(v > s for v in row)
        tied = sum(v == s for v in row) - 1
        expected += 1.0 / (tied + 1) if greater == 0 else 0.0
        optimistic += greater == 0
        same = sum(keys[j] == keys[i] for j in range(n))
        multi += same / (tied + 1) if greater == 0 else 0.0
    assert reported[("recall@1", "image->text")] == pytest.approx(expected / n, abs=1e-6)
    assert reported[("recall_mp@1", "image->text")] == pytest.approx(multi / n, abs=1e-6)
    assert expected <= optimistic and expected <= multi
