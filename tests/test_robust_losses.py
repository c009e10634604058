import math

import pytest
import torch
import torch.nn.functional as F

from modalab.objectives.clip import info_nce_pair
from modalab.objectives.robust import (
    GCELoss,
    RINCELoss,
    generalized_cross_entropy,
    pairwise_info_nce,
    rince_loss,
    rince_pair,
    small_loss_selection,
    symmetric_cross_entropy,
)


def _reference_rince(a, b, scale, q, lam):
    n = a.shape[0]
    total = []
    for i in range(n):
        row = [scale * float(a[i] @ b[j]) for j in range(n)]
        col = [scale * float(b[i] @ a[j]) for j in range(n)]
        per = []
        for scores in (row, col):
            pos = math.exp(q * scores[i]) / q
            neg = (lam * sum(math.exp(s) for s in scores)) ** q / q
            per.append(-pos + neg)
        total.append(0.5 * sum(per))
    return total


def test_rince_matches_reference_implementation():
    g = torch.Generator().manual_seed(0)
    a = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    b = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    for q, lam in ((0.5, 0.01), (1.0, 1.0), (0.1, 0.5)):
        got = rince_pair(a, b, 5.0, q, lam).tolist()
        assert got == pytest.approx(_reference_rince(a, b, 5.0, q, lam), rel=1e-4)


def test_rince_tends_to_infonce_plus_log_lambda_as_q_vanishes():
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    b = F.normalize(torch.randn(5, 3, generator=g), dim=1)
    lam = 0.3
    # -e^{q s+}/q + (lam Z)^q/q = (log(lam Z) - s+) + O(q), up to the constant -1/q + 1/q.
    got = rince_pair(a.double(), b.double(), 2.0, 1e-6, lam).mean().item()
    expected = info_nce_pair(a.double(), b.double(), 2.0).item() + math.log(lam)
    assert got == pytest.approx(expected, abs=1e-4)


def test_rince_respects_present_and_downweights_false_pairs():
    g = torch.Generator().manual_seed(2)
    a = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    b = F.normalize(torch.randn(6, 4, generator=g), dim=1)
    present = {
        "a": torch.tensor([True, True, False, True, True, True]),
        "b": torch.ones(6, dtype=torch.bool),
    }
    out = rince_loss({"a": a, "b": b}, present, 5.0, q=0.5, lam=0.01)
    rows = present["a"]
    assert out.loss.item() == pytest.approx(
        rince_pair(a[rows], b[rows], 5.0, 0.5, 0.01).mean().item(), rel=1e-6
    )
    assert RINCELoss(0.2, 0.5, 0.01)({"a": a, "b": b}, present).loss.item() == pytest.approx(
        out.loss.item(), rel=1e-6
    )
    # q = 1: the gradient weight of a pair is e^{s+}; a hard (false) positive gets less gradient
    # than under InfoNCE, relative to an easy one.
    z = torch.eye(3)
    easy_and_hard_b = torch.stack([z[0], z[1], -z[2]]).requires_grad_(True)
    rince_pair(z, easy_and_hard_b, 1.0, 1.0, 1.0).sum().backward()
    g_rince = easy_and_hard_b.grad.norm(dim=1)
    b2 = torch.stack([z[0], z[1], -z[2]]).requires_grad_(True)
    (3 * pairwise_info_nce(z, b2, 1.0).mean()).backward()
    g_nce = b2.grad.norm(dim=1)
    assert g_rince[2] / g_rince[0] < g_nce[2] / g_nce[0]


def test_pairwise_info_nce_mean_is_clip_loss():
    g = torch.Generator().manual_seed(3)
    a = F.normalize(torch.randn(7, 4, generator=g), dim=1)
    b = F.normalize(torch.randn(7, 4, generator=g), dim=1)
    assert pairwise_info_nce(a, b, 3.0).mean().item() == pytest.approx(
        info_nce_pair(a, b, 3.0).item(), rel=1e-6
    )


def test_gce_formula_and_limits():
    g = torch.Generator().manual_seed(4)
    logits, label = torch.randn(10, 5, generator=g), torch.randint(0, 5, (10,), generator=g)
    p_y = F.softmax(logits, 1)[torch.arange(10), label]
    assert generalized_cross_entropy(logits, label, 0.7).item() == pytest.approx(
        ((1 - p_y**0.7) / 0.7).mean().item(), rel=1e-6
    )
    # q -> 0: cross-entropy; q = 1: MAE-like 1 - p_y
    assert generalized_cross_entropy(logits.double(), label, 1e-7).item() == pytest.approx(
        F.cross_entropy(logits.double(), label).item(), rel=1e-5
    )
    assert GCELoss(1.0)(logits, label).loss.item() == pytest.approx(
        (1 - p_y).mean().item(), rel=1e-6
    )


def test_sce_matches_its_definition():
    g = torch.Generator().manual_seed(5)
    logits, label = torch.randn(10, 4, generator=g), torch.randint(0, 4, (10,), generator=g)
    p = F.softmax(logits, 1)
    rce = []
    for i in range(10):
        rce.append(-sum(p[i, k].item() * (0.0 if k == label[i] else -4.0) for k in range(4)))
    expected = 0.3 * F.cross_entropy(logits, label).item() + 0.8 * sum(rce) / 10
    assert symmetric_cross_entropy(logits, label, 0.3, 0.8).item() == pytest.approx(
        expected, rel=1e-5
    )


def test_robust_losses_bounded_on_confidently_wrong_labels():
    logits = torch.tensor([[20.0, -20.0]])
    wrong = torch.tensor([1])
    assert F.cross_entropy(logits, wrong).item() > 39
    assert generalized_cross_entropy(logits, wrong, 0.7).item() <= 1 / 0.7 + 1e-6
    assert symmetric_cross_entropy(logits, wrong, 0.0, 1.0).item() <= 4.0 + 1e-6


def test_small_loss_selection_keeps_the_smallest():
    losses = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])
    mask = small_loss_selection(losses, 0.5)
    assert mask.tolist() == [False, True, False, True, False, True]
    assert small_loss_selection(losses, 0.4).sum() == 3  # ceil(2.4)
    assert small_loss_selection(losses, 1.0).all()


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="q="):
        generalized_cross_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), 0.0)
    with pytest.raises(ValueError, match="alpha"):
        symmetric_cross_entropy(torch.zeros(2, 2), torch.tensor([0, 1]), 0.0, 0.0)
    with pytest.raises(ValueError, match="keep_fraction"):
        small_loss_selection(torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="lam"):
        rince_pair(torch.eye(2), torch.eye(2), 1.0, 0.5, 0.0)
    with pytest.raises(ValueError, match="logits"):
        generalized_cross_entropy(torch.zeros(2, 2), torch.tensor([0]))
