"""Self-supervised objectives against independent reference implementations."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from modalab.objectives import (
    BarlowTwinsLoss,
    BYOLLoss,
    MoCoLoss,
    NTXentLoss,
    VICRegLoss,
    barlow_twins_loss,
    byol_loss,
    captioning_loss,
    masked_feature_loss,
    masked_modality_loss,
    masked_token_loss,
    matching_loss,
    moco_infonce,
    nt_xent,
    nt_xent_loss,
    simsiam_loss,
    vicreg_loss,
)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _ones(n: int) -> torch.Tensor:
    return torch.ones(n, dtype=torch.bool)


# --- NT-Xent -------------------------------------------------------------------------------


def _nt_xent_reference(a: np.ndarray, b: np.ndarray, t: float) -> float:
    """Double loop over the 2N anchors, as written in the SimCLR paper."""
    z = np.concatenate([a, b]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = a.shape[0]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(z[i] @ z[k] / t) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(z[i] @ z[j] / t) / denom)
    return total / (2 * n)


def test_nt_xent_matches_reference() -> None:
    a, b = _rand(6, 5, seed=1), _rand(6, 5, seed=2)
    out = nt_xent_loss({"v1": a, "v2": b}, {"v1": _ones(6), "v2": _ones(6)}, 0.3)
    assert out.loss.item() == pytest.approx(_nt_xent_reference(a.numpy(), b.numpy(), 0.3), abs=1e-5)


def test_nt_xent_closed_form_orthonormal() -> None:
    # Identical orthonormal views: positive sim 1, 2N-2 negatives of sim 0.
    n, t = 4, 0.5
    z = torch.eye(n)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert nt_xent(z, z, t).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_ignores_absent_rows() -> None:
    a, b = _rand(6, 4, seed=3), _rand(6, 4, seed=4)
    present_b = torch.tensor([True, True, False, True, False, True])
    out = nt_xent_loss({"x": a, "y": b}, {"x": _ones(6), "y": present_b}, 0.2)
    rows = present_b.numpy()
    assert out.loss.item() == pytest.approx(
        _nt_xent_reference(a.numpy()[rows], b.numpy()[rows], 0.2), abs=1e-5
    )
    # Absent rows receive no gradient and their values do not matter.
    a2 = a.clone().requires_grad_(True)
    b2 = b.clone()
    b2[~present_b] = 100.0
    loss = nt_xent_loss({"x": a2, "y": b2}, {"x": _ones(6), "y": present_b}, 0.2).loss
    loss.backward()
    assert loss.item() == pytest.approx(out.loss.item(), abs=1e-6)
    assert torch.all(a2.grad[~present_b] == 0)
    assert out.num_rows == {"x~y": 4}


def test_nt_xent_module_rejects_bad_temperature() -> None:
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature=0.0)


# --- MoCo ----------------------------------------------------------------------------------


def test_moco_infonce_with_queue_matches_reference() -> None:
    q = F.normalize(_rand(5, 3, seed=5), dim=1)
    k = F.normalize(_rand(5, 3, seed=6), dim=1)
    queue = F.normalize(_rand(7, 3, seed=7), dim=1)
    t = 0.2
    expected = 0.0
    for i in range(5):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[j]) / t) for j in range(7))
        expected += -math.log(pos / (pos + neg))
    assert moco_infonce(q, k, queue, t).item() == pytest.approx(expected / 5, abs=1e-5)


def test_moco_v3_in_batch_and_no_gradient_into_keys() -> None:
    q = _rand(4, 3, seed=8).requires_grad_(True)
    k = _rand(4, 3, seed=9).requires_grad_(True)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = (qn @ kn.t()).detach().numpy() / 0.5
    expected = float(np.mean([-logits[i, i] + np.log(np.exp(logits[i]).sum()) for i in range(4)]))
    loss = moco_infonce(qn, kn, None, 0.5)
    loss.backward()
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert k.grad is None


def test_moco_queue_is_a_ring_buffer_of_present_keys() -> None:
    loss = MoCoLoss(["a"], dim=2, queue_size=3, temperature=0.1)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 4.0]])
    loss.enqueue({"a": keys}, {"a": torch.tensor([True, False, True])})
    queue = loss.queue("a")
    assert torch.allclose(queue[0], torch.tensor([1.0, 0.0]))
    assert torch.allclose(queue[1], torch.tensor([0.6, 0.8]))
    loss.enqueue({"a": torch.tensor([[0.0, -2.0], [-1.0, 0.0]])}, {"a": _ones(2)})
    queue = loss.queue("a")  # pointer wrapped: slot 2 then slot 0
    assert torch.allclose(queue[2], torch.tensor([0.0, -1.0]))
    assert torch.allclose(queue[0], torch.tensor([-1.0, 0.0]))
    assert torch.allclose(queue[1], torch.tensor([0.6, 0.8]))


def test_moco_cross_modal_uses_the_key_modality_queue_and_ignores_absent() -> None:
    loss = MoCoLoss(["a", "b"], dim=3, queue_size=4, temperature=0.3)
    q = {"a": _rand(5, 3, seed=10), "b": _rand(5, 3, seed=11)}
    k = {"a": _rand(5, 3, seed=12), "b": _rand(5, 3, seed=13)}
    present = {"a": torch.tensor([True, True, False, True, True]), "b": _ones(5)}
    rows = present["a"]
    expected = 0.5 * (
        moco_infonce(F.normalize(q["a"][rows]), F.normalize(k["b"][rows]), loss.queue("b"), 0.3)
        + moco_infonce(F.normalize(q["b"][rows]), F.normalize(k["a"][rows]), loss.queue("a"), 0.3)
    )
    assert loss(q, k, present).loss.item() == pytest.approx(expected.item(), abs=1e-6)


# --- BYOL / SimSiam ------------------------------------------------------------------------


def test_byol_and_simsiam_match_formulas() -> None:
    p, t = _rand(4, 3, seed=14), _rand(4, 3, seed=15)
    pn, tn = p.numpy(), t.numpy()
    cos = [float(pn[i] @ tn[i] / np.linalg.norm(pn[i]) / np.linalg.norm(tn[i])) for i in range(4)]
    assert byol_loss(p, t).item() == pytest.approx(
        float(np.mean([2 - 2 * c for c in cos])), abs=1e-6
    )
    assert simsiam_loss(p, t).item() == pytest.approx(-float(np.mean(cos)), abs=1e-6)


def test_byol_stops_gradient_into_target_and_ignores_absent() -> None:
    p = {"a": _rand(4, 3, seed=16).requires_grad_(True), "b": _rand(4, 3, seed=17)}
    t = {"a": _rand(4, 3, seed=18), "b": _rand(4, 3, seed=19).requires_grad_(True)}
    present = {"a": torch.tensor([True, False, True, True]), "b": _ones(4)}
    out = BYOLLoss("byol")(p, t, present)
    rows = present["a"]
    expected = 0.5 * (byol_loss(p["a"][rows], t["b"][rows]) + byol_loss(p["b"][rows], t["a"][rows]))
    assert out.loss.item() == pytest.approx(expected.item(), abs=1e-6)
    out.loss.backward()
    assert t["b"].grad is None
    assert torch.all(p["a"].grad[1] == 0)


# --- VICReg / Barlow -------------------------------------------------------------------------


def _vicreg_reference(a: np.ndarray, b: np.ndarray, lam: float, mu: float, nu: float) -> float:
    n, d = a.shape
    inv = float(np.mean((a - b) ** 2))
    var = 0.0
    cov = 0.0
    for x in (a, b):
        x = x - x.mean(0)
        std = np.sqrt(np.array([np.sum(x[:, j] ** 2) / (n - 1) for j in range(d)]) + 1e-4)
        var += float(np.mean(np.maximum(0, 1 - std))) / 2
        c = np.zeros((d, d))
        for i in range(d):
            for j in range(d):
                c[i, j] = np.sum(x[:, i] * x[:, j]) / (n - 1)
        cov += sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return lam * inv + mu * var + nu * cov


def test_vicreg_matches_reference() -> None:
    a, b = 0.5 * _rand(8, 4, seed=20), 0.5 * _rand(8, 4, seed=21)
    out = vicreg_loss(a, b, 25.0, 25.0, 1.0)
    assert out.loss.item() == pytest.approx(
        _vicreg_reference(a.double().numpy(), b.double().numpy(), 25, 25, 1), rel=1e-5
    )


def test_vicreg_statistics_exclude_absent_rows() -> None:
    a, b = _rand(8, 4, seed=22), _rand(8, 4, seed=23)
    present = torch.tensor([True, True, True, False, True, False, True, True])
    module = VICRegLoss(gather_distributed=False)
    out = module({"a": a, "b": b}, {"a": present, "b": _ones(8)})
    rows = present.numpy()
    expected = _vicreg_reference(a.double().numpy()[rows], b.double().numpy()[rows], 25, 25, 1)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def _barlow_reference(a: np.ndarray, b: np.ndarray, lam: float) -> float:
    n, d = a.shape
    za = (a - a.mean(0)) / np.sqrt(a.var(0) + 1e-5)
    zb = (b - b.mean(0)) / np.sqrt(b.var(0) + 1e-5)
    c = np.array([[np.sum(za[:, i] * zb[:, j]) / n for j in range(d)] for i in range(d)])
    on = sum((1 - c[i, i]) ** 2 for i in range(d))
    off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on + lam * off


def test_barlow_matches_reference_and_excludes_absent() -> None:
    a, b = _rand(9, 3, seed=24), _rand(9, 3, seed=25)
    assert barlow_twins_loss(a, b, 0.1).loss.item() == pytest.approx(
        _barlow_reference(a.double().numpy(), b.double().numpy(), 0.1), rel=1e-5
    )
    present = torch.tensor([True] * 6 + [False] * 3)
    out = BarlowTwinsLoss(0.1)({"a": a, "b": b}, {"a": present, "b": _ones(9)})
    assert out.loss.item() == pytest.approx(
        _barlow_reference(a.double().numpy()[:6], b.double().numpy()[:6], 0.1), rel=1e-5
    )


def test_statistic_losses_need_two_rows() -> None:
    with pytest.raises(ValueError, match="at least 2 rows"):
        vicreg_loss(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least 2 rows"):
        barlow_twins_loss(torch.zeros(1, 3), torch.zeros(1, 3))


@pytest.mark.parametrize("name", ["nt_xent", "vicreg", "barlow"])
def test_a_few_gradient_steps_lower_the_loss(name: str) -> None:
    torch.manual_seed(0)
    x = _rand(32, 6, seed=26)
    noise_a, noise_b = 0.1 * _rand(32, 6, seed=27), 0.1 * _rand(32, 6, seed=28)
    net = torch.nn.Linear(6, 8)
    loss_fn = {"nt_xent": NTXentLoss(0.5), "vicreg": VICRegLoss(), "barlow": BarlowTwinsLoss()}[
        name
    ]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    present = {"a": _ones(32), "b": _ones(32)}
    losses = []
    for _ in range(20):
        out = loss_fn({"a": net(x + noise_a), "b": net(x + noise_b)}, present)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]


# --- masked modelling, matching, captioning ------------------------------------------------


def test_masked_token_loss_matches_manual_log_softmax() -> None:
    logits = _rand(2, 3, 5, seed=29)
    targets = torch.tensor([[1, 2, 3], [4, 0, 1]])
    masked = torch.tensor([[True, False, True], [False, False, True]])
    lp = logits.log_softmax(-1)
    expected = -(lp[0, 0, 1] + lp[0, 2, 3] + lp[1, 2, 1]) / 3
    assert masked_token_loss(logits, targets, masked).item() == pytest.approx(
        expected.item(), abs=1e-6
    )


def test_masked_feature_loss_counts_masked_patches_only() -> None:
    pred = torch.zeros(2, 3, 2)
    target = torch.tensor(
        [[[1.0, 1.0], [2.0, 0.0], [9.0, 9.0]], [[0.0, 4.0], [7.0, 7.0], [1.0, 1.0]]]
    )
    masked = torch.tensor([[True, True, False], [True, False, False]])
    # patch means of squared errors: 1, 2, 8 → mean 11/3
    assert masked_feature_loss(pred, target, masked).item() == pytest.approx(11 / 3, abs=1e-6)


def test_masked_modality_loss_ignores_invalid_rows() -> None:
    p = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0]]), "b": torch.tensor([[0.0, 1.0], [1.0, 1.0]])}
    t = {"a": torch.tensor([[-1.0, 0.0], [1.0, 0.0]]), "b": torch.tensor([[0.0, 1.0], [1.0, -1.0]])}
    valid = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    out = masked_modality_loss(p, t, valid)
    # a: row 0 only, cos -1 → 4. b: rows 0 (cos 1 → 0) and 1 (cos 0 → 2) → 1.
    assert out.terms["a"].item() == pytest.approx(4.0)
    assert out.terms["b"].item() == pytest.approx(1.0)
    assert out.loss.item() == pytest.approx(2.5)


def test_matching_loss_is_binary_cross_entropy_over_valid_rows() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5])
    is_match = torch.tensor([True, False, True])
    valid = torch.tensor([True, True, False])
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -(math.log(sig(2.0)) + math.log(1 - sig(-1.0))) / 2
    assert matching_loss(logits, is_match, valid).item() == pytest.approx(expected, abs=1e-6)


def test_captioning_loss_shifts_and_ignores_pad_and_absent_rows() -> None:
    logits = _rand(2, 4, 6, seed=30)
    tokens = torch.tensor([[1, 4, 5, 0], [1, 2, 3, 4]])
    rows = torch.tensor([True, False])
    lp = logits.log_softmax(-1)
    expected = -(lp[0, 0, 4] + lp[0, 1, 5]) / 2
    assert captioning_loss(logits, tokens, 0, rows).item() == pytest.approx(
        expected.item(), abs=1e-6
    )


def test_shape_errors_are_explained() -> None:
    with pytest.raises(ValueError, match=r"\[B, L, V\]"):
        masked_token_loss(
            torch.zeros(2, 3, 4),
            torch.zeros(2, 4, dtype=torch.long),
            torch.zeros(2, 4, dtype=torch.bool),
        )
    with pytest.raises(ValueError, match="variant"):
        BYOLLoss("dino")
    with pytest.raises(ValueError, match="queue_size"):
        MoCoLoss(["a"], 2, queue_size=-1)
