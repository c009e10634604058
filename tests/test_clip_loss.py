import math

import pytest
import torch
import torch.nn.functional as F

from modalab.objectives import CLIPLoss, clip_loss, info_nce_pair


def _reference_pair(a: torch.Tensor, b: torch.Tensor, scale: float) -> float:
    """Straightforward double loop over rows: mean of -log softmax of the diagonal."""
    a = F.normalize(a, dim=1).double()
    b = F.normalize(b, dim=1).double()
    n = a.shape[0]
    total = 0.0
    for i in range(n):
        row = [scale * float(a[i] @ b[j]) for j in range(n)]
        col = [scale * float(a[j] @ b[i]) for j in range(n)]
        total += -row[i] + math.log(sum(math.exp(v) for v in row))
        total += -col[i] + math.log(sum(math.exp(v) for v in col))
    return total / (2 * n)


def test_hand_computed_two_by_two() -> None:
    # a = [e1, e2], b = [e1, (e1 + e2)/sqrt(2)], scale 2.
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    s = 1 / math.sqrt(2)
    # Similarities: S = [[1, s], [0, s]] times 2.
    row0 = -2 + math.log(math.exp(2) + math.exp(2 * s))
    row1 = -2 * s + math.log(1 + math.exp(2 * s))
    col0 = -2 + math.log(math.exp(2) + 1)
    col1 = -2 * s + math.log(math.exp(2 * s) + math.exp(2 * s))
    expected = (row0 + row1 + col0 + col1) / 4
    assert info_nce_pair(F.normalize(a), F.normalize(b), 2.0).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_identical_embeddings_closed_form() -> None:
    # Orthonormal identical embeddings: each row is -log(e^s / (e^s + (n-1))).
    n, scale = 5, 3.0
    z = torch.eye(n)
    expected = -math.log(math.exp(scale) / (math.exp(scale) + n - 1))
    out = clip_loss({"a": z, "b": z}, {k: torch.ones(n, dtype=torch.bool) for k in "ab"}, scale)
    assert out.loss.item() == pytest.approx(expected, abs=1e-6)


def test_matches_reference_on_random_embeddings() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    present = {k: torch.ones(7, dtype=torch.bool) for k in "ab"}
    out = clip_loss({"a": a, "b": b}, present, 1.7)
    assert out.loss.item() == pytest.approx(_reference_pair(a, b, 1.7), abs=1e-5)


def test_symmetric_in_the_modalities() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    p = {k: torch.ones(6, dtype=torch.bool) for k in "ab"}
    assert clip_loss({"a": a, "b": b}, p, 2.0).loss.item() == pytest.approx(
        clip_loss({"b": b, "a": a}, p, 2.0).loss.item(), abs=1e-6
    )


def test_absent_rows_are_neither_positives_nor_negatives() -> None:
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    present = {
        "a": torch.tensor([1, 1, 0, 1, 1, 0, 1, 1], dtype=torch.bool),
        "b": torch.tensor([1, 1, 1, 1, 0, 1, 1, 1], dtype=torch.bool),
    }
    rows = present["a"] & present["b"]
    out = clip_loss({"a": a, "b": b}, present, 2.5)
    assert out.num_rows == {"a~b": 5}
    assert out.loss.item() == pytest.approx(_reference_pair(a[rows], b[rows], 2.5), abs=1e-5)
    # Whatever an absent row holds does not change the loss.
    a2 = a.clone()
    a2[~present["a"]] = 100 * torch.randn(2, 4, generator=g)
    assert clip_loss({"a": a2, "b": b}, present, 2.5).loss.item() == pytest.approx(out.loss.item())
    # And absent rows get no gradient.
    a3 = a.clone().requires_grad_(True)
    clip_loss({"a": a3, "b": b}, present, 2.5).loss.backward()
    assert torch.all(a3.grad[~rows] == 0)
    assert torch.any(a3.grad[rows] != 0)


def test_three_modalities_mean_over_pairs_and_skips_empty_pairs() -> None:
    g = torch.Generator().manual_seed(3)
    z = {m: torch.randn(6, 4, generator=g) for m in ("a", "b", "c")}
    present = {
        "a": torch.ones(6, dtype=torch.bool),
        "b": torch.ones(6, dtype=torch.bool),
        "c": torch.tensor([1, 0, 0, 0, 0, 0], dtype=torch.bool),
    }
    out = clip_loss(z, present, 1.0)
    assert set(out.terms) == {"a~b"}  # a~c and b~c have a single joint row: no term
    assert out.loss.item() == pytest.approx(_reference_pair(z["a"], z["b"], 1.0), abs=1e-5)
    present["c"] = torch.ones(6, dtype=torch.bool)
    full = clip_loss(z, present, 1.0)
    expected = (
        sum(_reference_pair(z[x], z[y], 1.0) for x, y in (("a", "b"), ("a", "c"), ("b", "c"))) / 3
    )
    assert full.loss.item() == pytest.approx(expected, abs=1e-5)


def test_no_jointly_present_rows_gives_zero_with_graph() -> None:
    a = torch.randn(3, 2, requires_grad=True)
    present = {"a": torch.tensor([True, False, False]), "b": torch.tensor([False, True, True])}
    out = clip_loss({"a": a, "b": torch.randn(3, 2)}, present, 1.0)
    assert out.loss.item() == 0.0 and out.terms == {}
    out.loss.backward()  # must not raise


def test_module_temperature_is_learned_and_validated() -> None:
    loss = CLIPLoss(temperature=0.5)
    assert loss.logit_scale.item() == pytest.approx(2.0)
    assert any(p is loss.log_logit_scale for p in loss.parameters())
    frozen = CLIPLoss(temperature=0.5, learn_temperature=False)
    assert list(frozen.parameters()) == []
    with pytest.raises(ValueError, match="Illegal temperature"):
        CLIPLoss(temperature=0.0)


def test_gradient_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    a = torch.randn(16, 8, requires_grad=True)
    b = torch.randn(16, 8, requires_grad=True)
    loss_fn = CLIPLoss(temperature=0.2)
    present = {k: torch.ones(16, dtype=torch.bool) for k in "ab"}
    opt = torch.optim.SGD([a, b, *loss_fn.parameters()], lr=1.0)
    first = loss_fn({"a": a, "b": b}, present).loss.item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn({"a": a, "b": b}, present).loss
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


def test_nan_in_an_absent_row_leaves_loss_and_gradients_finite() -> None:
    # Absent rows may hold anything; clip_loss selects present rows before normalising, so a
    # NaN there never enters the graph: the loss equals the loss without that row and its
    # gradient is exactly zero.
    torch.manual_seed(0)
    a = torch.randn(4, 3)
    b = torch.randn(4, 3)
    a_nan = a.clone()
    a_nan[3] = float("nan")
    a_nan.requires_grad_(True)
    present = {"a": torch.tensor([True, True, True, False]), "b": torch.ones(4, dtype=torch.bool)}
    out = clip_loss({"a": a_nan, "b": b}, present, 2.0)
    out.loss.backward()
    assert a_nan.grad is not None
    assert torch.isfinite(a_nan.grad).all()
    assert torch.equal(a_nan.grad[3], torch.zeros(3))
    assert out.loss.item() == pytest.approx(_reference_pair(a[:3], b[:3], 2.0), abs=1e-5)


def test_no_jointly_present_pair_gives_a_finite_zero_even_with_nan_rows() -> None:
    a = torch.full((2, 3), float("nan"), requires_grad=True)
    b = torch.randn(2, 3)
    present = {"a": torch.zeros(2, dtype=torch.bool), "b": torch.ones(2, dtype=torch.bool)}
    out = clip_loss({"a": a, "b": b}, present, 1.0)
    out.loss.backward()
    assert out.loss.item() == 0.0 and torch.equal(a.grad, torch.zeros(2, 3))
