import itertools
import math

import pytest
import torch
from torch import nn

from modalab.data.batch import MultimodalBatch
from modalab.data.presence import drop_modalities
from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.evaluation.missing import missing_rate_curve
from modalab.methods.robust_fusion import build_supervised_robust
from modalab.methods.tricks import modality_dropout
from modalab.models.missing import AbsentEmbeddings, EmbeddingImputer
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.imputation import imputation_loss


def _all_present(n, names):
    return {m: torch.ones(n, dtype=torch.bool) for m in names}


@pytest.mark.parametrize(("rate", "m"), [(0.3, 2), (0.5, 2), (0.4, 3), (0.9, 3)])
def test_modality_dropout_rate_matches_its_formula(rate, m):
    names = [f"m{i}" for i in range(m)]
    out = modality_dropout(_all_present(40000, names), rate, torch.Generator().manual_seed(0))
    stacked = torch.stack([out[n] for n in names], 1)
    assert stacked.any(1).all()  # never all absent
    expected = rate - rate**m / m
    for n in names:
        assert (~out[n]).float().mean().item() == pytest.approx(expected, abs=0.01)


def test_modality_dropout_keeps_absent_absent_and_is_seeded():
    present = {
        "a": torch.tensor([True, False, True, False] * 50),
        "b": torch.ones(200, dtype=torch.bool),
    }
    first = modality_dropout(present, 0.7, torch.Generator().manual_seed(3))
    again = modality_dropout(present, 0.7, torch.Generator().manual_seed(3))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not (first["a"] & ~present["a"]).any()
    # rows where only b was present keep b (it is their only modality)
    assert first["b"][~present["a"]].all()
    assert modality_dropout(present, 0.0, torch.Generator())["a"].tolist() == present["a"].tolist()
    with pytest.raises(ValueError, match="rate"):
        modality_dropout(present, 1.5, torch.Generator())


def test_imputation_trained_only_where_target_present():
    pred = torch.randn(5, 3, requires_grad=True)
    target = torch.randn(5, 3, requires_grad=True)
    present = torch.tensor([True, False, True, False, True])
    out = imputation_loss({"a": pred}, {"a": target}, {"a": present})
    expected = ((pred[present] - target[present]) ** 2).mean()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    out.loss.backward()
    assert torch.all(pred.grad[~present] == 0) and torch.all(pred.grad[present] != 0)
    assert target.grad is None  # the target is detached
    none = imputation_loss({"a": pred}, {"a": target}, {"a": torch.zeros(5, dtype=torch.bool)})
    assert none.loss.item() == 0 and none.num_rows == {}


def test_imputer_ignores_absent_sources_and_absent_embeddings_fill():
    torch.manual_seed(0)
    imputer = EmbeddingImputer(["a", "b", "c"], 4, hidden=8)
    e = {m: torch.randn(3, 4) for m in "abc"}
    p = {
        "a": torch.tensor([True, True, True]),
        "b": torch.tensor([False, True, False]),
        "c": torch.tensor([True, False, False]),
    }
    guess, has_source = imputer(e, p)
    e2 = dict(e, b=e["b"] + 100.0 * (~p["b"]).float().unsqueeze(1))  # change only absent rows of b
    guess2, _ = imputer(e2, p)
    assert torch.allclose(guess["a"], guess2["a"]) and torch.allclose(guess["c"], guess2["c"])
    assert has_source["a"].tolist() == [True, True, False]  # row 2: b and c both absent
    absent = AbsentEmbeddings(["a"], 4)
    with torch.no_grad():
        absent.vectors["a"].fill_(3.0)
    filled = absent({"a": e["a"]}, {"a": torch.tensor([True, False, True])})
    assert torch.equal(filled["a"][0], e["a"][0]) and filled["a"][1].tolist() == [3.0] * 4


def _method(fill, rate=0.0):
    torch.manual_seed(0)
    enc = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
    return build_supervised_robust(enc, 2, 4, fill=fill, dropout_rate=rate, hidden=8)


def test_robust_fusion_fill_modes():
    batch = MultimodalBatch.from_inputs(
        {"a": torch.randn(4, 3), "b": torch.randn(4, 2)},
        label=torch.tensor([0, 1, 0, 1]),
        present={"b": torch.tensor([True, False, True, False])},
    )
    zero = _method("zero")
    reps = zero.representations(batch)
    assert torch.all(reps["b"][1] == 0)
    impute = _method("impute")
    emb = impute.encoder(batch.inputs)
    filled, predicted, _ = impute.fill_absent(emb, batch.present)
    assert torch.allclose(filled["b"][1], predicted["b"][1])
    assert torch.allclose(filled["b"][0], emb["b"][0])
    absent = _method("absent")
    filled, _, _ = absent.fill_absent(absent.encoder(batch.inputs), batch.present)
    assert torch.equal(filled["b"][1], absent.absent.vectors["b"].detach())
    with pytest.raises(ValueError, match="fill"):
        _method("mean")


def test_missing_rate_curve_counts_missing_entries_and_accuracy():
    n = 2000
    data = MultimodalTensorDataset(
        {"a": torch.zeros(n, 1), "b": torch.zeros(n, 1)},
        label=torch.zeros(n, dtype=torch.long),
        num_classes=2,
    )

    def predict(batch):  # right iff modality a is present
        return torch.stack([batch.present["a"].float(), 1 - batch.present["a"].float()], 1)

    points = missing_rate_curve(predict, data, [0.0, 0.5], seed=0)
    assert points[0].accuracy == 1.0 and points[0].missing_fraction == 0.0
    assert points[1].missing_fraction == pytest.approx(0.5 - 0.25 / 2, abs=0.03)
    assert points[1].accuracy == pytest.approx(1 - (0.5 - 0.25 / 2), abs=0.03)


def test_training_step_imputes_against_true_masks_after_dropout():
    method = _method("impute", rate=0.5)
    torch.manual_seed(1)
    batch = MultimodalBatch.from_inputs(
        {"a": torch.randn(16, 3), "b": torch.randn(16, 2)},
        label=torch.randint(0, 2, (16,)),
        present={"b": torch.tensor([True, False] * 8)},
    )
    logged: dict[str, float] = {}
    method.log = lambda name, value, **_: logged.__setitem__(name, float(value))  # type: ignore[method-assign]
    method.training_step(batch, 0)
    # the same dropout masks, from the recipe's seeded generator at step 0
    dropped = modality_dropout(batch.present, 0.5, torch.Generator().manual_seed(0))
    with torch.no_grad():
        emb = method.encoder(batch.inputs)
        predicted, has_source = method.imputer(emb, dropped)
        rows = {m: batch.present[m] & has_source[m] for m in "ab"}
        terms = [
            ((predicted[m][rows[m]] - emb[m][rows[m]]) ** 2).mean() for m in "ab" if rows[m].any()
        ]
    assert logged["train/imputation"] == pytest.approx(float(sum(terms) / len(terms)), rel=1e-5)
    assert not rows["b"][1::2].any()  # rows where b is truly absent never train its imputer


# ---- the one sampler: drop_modalities ---------------------------------------------------


def _exact_marginals(rates: list[float], present: tuple[bool, ...]) -> list[float]:
    """P(modality j ends absent), by enumerating every drop pattern (brute force)."""
    m = len(rates)
    absent = [0.0] * m
    for pattern in itertools.product([False, True], repeat=m):  # True: drawn for dropping
        p = math.prod(r if d else 1 - r for r, d in zip(rates, pattern, strict=True))
        kept = [present[j] and not pattern[j] for j in range(m)]
        originally = [j for j in range(m) if present[j]]
        if not any(kept) and originally:  # restore one originally present, uniformly
            for j in range(m):
                share = 1 / len(originally) if j in originally else 0.0
                absent[j] += p * (1 - share)
        else:
            for j in range(m):
                absent[j] += p * (not kept[j])
    return absent


@pytest.mark.parametrize(
    "rates",
    [[0.5, 0.5], [0.4, 0.4, 0.4], [0.9, 0.9, 0.9], [0.2, 0.7], [0.3, 0.8, 0.95]],
)
def test_drop_modalities_marginals_match_brute_force(rates):
    m, n = len(rates), 40000
    names = [f"m{i}" for i in range(m)]
    exact = _exact_marginals(rates, (True,) * m)
    # the closed form of the docstring: r_j - prod(r) / M
    assert exact == pytest.approx([r - math.prod(rates) / m for r in rates], abs=1e-12)
    if len(set(rates)) == 1:
        r = rates[0]
        assert exact[0] == pytest.approx(r - r**m / m, abs=1e-12)
    per_modality = dict(zip(names, rates, strict=True))
    out = drop_modalities(_all_present(n, names), per_modality, torch.Generator().manual_seed(5))
    stacked = torch.stack([out[k] for k in names], 1)
    assert stacked.any(1).all()
    for k, expected in zip(names, exact, strict=True):
        se = math.sqrt(expected * (1 - expected) / n)
        assert abs((~out[k]).float().mean().item() - expected) <= 4 * se


def test_drop_modalities_restores_only_originally_present_and_partial_rows():
    n = 30000
    g = torch.Generator().manual_seed(1)
    present = {"a": torch.rand(n, generator=g) < 0.5, "b": torch.ones(n, dtype=torch.bool)}
    present["c"] = torch.rand(n, generator=g) < 0.7
    rates = [0.6, 0.8, 0.5]
    out = drop_modalities(present, dict(zip("abc", rates, strict=True)), torch.Generator())
    for k in "abc":
        assert not (out[k] & ~present[k]).any()  # never made present
    for pattern in itertools.product([False, True], repeat=2):  # rows by which of a, c present
        rows = (present["a"] == pattern[0]) & (present["c"] == pattern[1])
        exact = _exact_marginals(rates, (pattern[0], True, pattern[1]))
        for j, k in enumerate("abc"):
            measured = (~out[k][rows]).float().mean().item()
            se = math.sqrt(max(exact[j] * (1 - exact[j]), 1e-12) / int(rows.sum()))
            assert abs(measured - exact[j]) <= 4 * se + 1e-12


def _reference_modality_dropout(present, rate, generator):
    """The pre-unification sampler of modality dropout, kept to pin its seeded draws."""
    names = list(present)
    original = torch.stack([present[k] for k in names], dim=1)
    if rate == 0 or len(names) < 2:
        return {k: present[k].clone() for k in names}
    kept = original & (torch.rand(original.shape, generator=generator) >= rate)
    empty = ~kept.any(dim=1) & original.any(dim=1)
    scores = torch.rand(original.shape, generator=generator).masked_fill(~original, -1.0)
    restore = torch.zeros_like(kept)
    restore[torch.arange(kept.shape[0]), scores.argmax(dim=1)] = True
    kept = kept | (restore & empty.unsqueeze(1))
    return {k: kept[:, i] for i, k in enumerate(names)}


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.7, 1.0])
def test_modality_dropout_is_drop_modalities_with_unchanged_seeded_draws(rate):
    g = torch.Generator().manual_seed(2)
    present = {k: torch.rand(300, generator=g) < 0.8 for k in "abc"}
    ours = modality_dropout(present, rate, torch.Generator().manual_seed(9))
    ref = _reference_modality_dropout(present, rate, torch.Generator().manual_seed(9))
    same = drop_modalities(present, rate, torch.Generator().manual_seed(9))
    assert all(torch.equal(ours[k], ref[k]) and torch.equal(ours[k], same[k]) for k in "abc")


def test_drop_modalities_without_keep_one_and_bad_rates():
    present = _all_present(5000, ["a", "b"])
    out = drop_modalities(present, {"a": 1.0}, torch.Generator(), keep_one=False)
    assert not out["a"].any() and out["b"].all()  # b has no rate: never dropped
    out = drop_modalities(present, 0.5, torch.Generator().manual_seed(0), keep_one=False)
    both = (~out["a"] & ~out["b"]).float().mean().item()
    assert abs(both - 0.25) <= 4 * math.sqrt(0.25 * 0.75 / 5000)  # independent, none restored
    with pytest.raises(ValueError, match="name modalities"):
        drop_modalities(present, {"z": 0.1}, torch.Generator())
    with pytest.raises(ValueError, match="must lie in"):
        drop_modalities(present, {"a": -0.1}, torch.Generator())
