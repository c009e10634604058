"""Unit tests of the counterfactual layer against hand-derived values and reference code."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn

from modalab.counterfactual import (
    INTERVENTIONS,
    EmbeddingPredictor,
    EncodedSplit,
    FusionModelPredictor,
    ablation_importance,
    analyse,
    class_heatmap,
    coalition_values,
    counterfactual_debias,
    encode_dataset,
    interaction_weights,
    intervene,
    mean_ci,
    perceptual_score,
    shapley_bars,
    shapley_values,
    shapley_weights,
    swap_matrix,
    swap_test,
)
from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.models.multimodal import ConcatFusion, LateFusionClassifier, MultimodalEncoder


class LinearPredictor:
    """logits = bias + sum over present modalities of embedding @ W_m (a reference model)."""

    def __init__(self, weights: dict[str, Tensor], bias: Tensor) -> None:
        self.weights = weights
        self.bias = bias
        self.calls = 0

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.weights)

    def encode(self, batch):  # pragma: no cover - cached path only
        return dict(batch.inputs)

    def predict(self, embeddings, present):
        self.calls += 1
        out = self.bias.expand(next(iter(present.values())).shape[0], -1).clone()
        for m, w in self.weights.items():
            out = out + (embeddings[m] @ w) * present[m].unsqueeze(1).float()
        return out


def make_split(n: int = 60, dims: dict[str, int] | None = None, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dims = dims or {"a": 4, "b": 3, "c": 2}
    emb = {m: torch.randn(n, d, generator=g) for m, d in dims.items()}
    present = {m: torch.rand(n, generator=g) > 0.15 for m in dims}
    label = torch.randint(classes, (n,), generator=g)
    return EncodedSplit(emb, present, label, torch.arange(n), classes)


def make_predictor(split: EncodedSplit, seed: int = 1) -> LinearPredictor:
    g = torch.Generator().manual_seed(seed)
    weights = {
        m: torch.randn(e.shape[1], split.num_classes, generator=g)
        for m, e in split.embeddings.items()
    }
    return LinearPredictor(weights, torch.randn(split.num_classes, generator=g))


def reference_shapley(v: dict[frozenset, float], players: list[str]) -> dict[str, float]:
    """Average marginal contribution over all orderings (the definition, not the weights)."""
    phi = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        coalition: frozenset = frozenset()
        for p in order:
            phi[p] += v[coalition | {p}] - v[coalition]
            coalition = coalition | {p}
    return {p: x / len(orders) for p, x in phi.items()}


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5])
def test_shapley_weights_match_average_over_orderings(m: int) -> None:
    players = [str(i) for i in range(m)]
    g = torch.Generator().manual_seed(m)
    values = torch.rand(1 << m, generator=g, dtype=torch.float64)
    v = {
        frozenset(p for j, p in enumerate(players) if (k >> j) & 1): float(values[k])
        for k in range(1 << m)
    }
    expected = reference_shapley(v, players)
    got = values @ shapley_weights(m)
    assert got.tolist() == pytest.approx([expected[p] for p in players], abs=1e-12)
    # efficiency
    assert float(got.sum()) == pytest.approx(float(values[-1] - values[0]), abs=1e-12)


def test_interaction_index_hand_derived_three_players() -> None:
    # bit 0 = "1", bit 1 = "2", bit 2 = "3"
    v = torch.tensor([0.1, 0.3, 0.2, 0.9, 0.05, 0.4, 0.6, 1.0], dtype=torch.float64)
    v0, v1, v2, v12, v3, v13, v23, v123 = v.tolist()
    pairs, w = interaction_weights(3)
    got = dict(zip(pairs, (v @ w).tolist()))
    # I_12 = 1/2 [(v12 - v1 - v2 + v0) + (v123 - v13 - v23 + v3)]
    assert got[(0, 1)] == pytest.approx(0.5 * ((v12 - v1 - v2 + v0) + (v123 - v13 - v23 + v3)))
    assert got[(0, 2)] == pytest.approx(0.5 * ((v13 - v1 - v3 + v0) + (v123 - v12 - v23 + v2)))
    assert got[(1, 2)] == pytest.approx(0.5 * ((v23 - v2 - v3 + v0) + (v123 - v12 - v13 + v1)))


@pytest.mark.parametrize("metric", ["accuracy", "log_prob"])
def test_shapley_efficiency_and_empty_coalition(metric: str) -> None:
    split = make_split()
    predictor = make_predictor(split)
    result = shapley_values(predictor, split, metric=metric)
    # efficiency, exactly, per sample
    assert torch.allclose(result.values.sum(1), result.full - result.empty, atol=1e-12)
    # the empty coalition is the model with every modality absent: here logits = bias
    n = split.num_samples
    bias_logits = predictor.bias.expand(n, -1)
    if metric == "accuracy":
        expected_empty = (bias_logits.argmax(1) == split.label).double()
    else:
        expected_empty = torch.log_softmax(bias_logits.double(), 1)[torch.arange(n), split.label]
    assert torch.allclose(result.empty, expected_empty, atol=1e-6)
    assert float(result.empty.abs().mean()) > 0.05  # not a metric of 0
    # the full coalition respects the data's own missingness
    logits = predictor.predict(split.embeddings, split.present)
    if metric == "accuracy":
        assert torch.equal(result.full, (logits.argmax(1) == split.label).double())


def test_shapley_per_sample_reference_on_one_sample() -> None:
    split = make_split(n=40)
    predictor = make_predictor(split)
    result = shapley_values(predictor, split, metric="log_prob")
    names = list(split.modalities)
    i = 7
    v = {}
    for k in range(1 << len(names)):
        coalition = frozenset(m for j, m in enumerate(names) if (k >> j) & 1)
        present = {m: split.present[m][i : i + 1] & (m in coalition) for m in names}
        logits = predictor.predict({m: split.embeddings[m][i : i + 1] for m in names}, present)
        v[coalition] = float(torch.log_softmax(logits.double(), 1)[0, split.label[i]])
    expected = reference_shapley(v, names)
    assert result.values[i].tolist() == pytest.approx([expected[m] for m in names], abs=1e-6)


def test_values_do_not_depend_on_batching() -> None:
    split = make_split(n=101)
    predictor = make_predictor(split)
    one = shapley_values(predictor, split, metric="log_prob", batch_size=1000)
    many = shapley_values(predictor, split, metric="log_prob", batch_size=7)
    assert torch.allclose(one.values, many.values, atol=1e-9)
    assert torch.allclose(one.interactions, many.interactions, atol=1e-9)
    p1 = perceptual_score(predictor, split, batch_size=1000)
    p2 = perceptual_score(predictor, split, batch_size=9)
    assert p1["value"].tolist() == pytest.approx(p2["value"].tolist())
    s1 = swap_test(predictor, split, "a", batch_size=1000)
    s2 = swap_test(predictor, split, "a", batch_size=5)
    assert s1["value"].tolist() == s2["value"].tolist()


def test_sampled_shapley_is_efficient_and_close_to_exact() -> None:
    split = make_split(n=80)
    predictor = make_predictor(split)
    exact = shapley_values(predictor, split, metric="log_prob")
    sampled = shapley_values(
        predictor, split, metric="log_prob", exact_max=2, num_permutations=400, seed=3
    )
    assert not sampled.exact
    assert torch.allclose(sampled.values.sum(1), sampled.full - sampled.empty, atol=1e-9)
    # 3 players have 6 orderings; 400 draws estimate each ordering's frequency to ~±0.02
    assert torch.allclose(sampled.values.mean(0), exact.values.mean(0), atol=0.05)


def test_cached_equals_rerunning_the_whole_model() -> None:
    torch.manual_seed(0)
    encoder = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(5, 4), "b": nn.Linear(3, 4)}))
    model = LateFusionClassifier(encoder, ConcatFusion(), nn.Linear(10, 3))
    g = torch.Generator().manual_seed(0)
    dataset = MultimodalTensorDataset(
        {"a": torch.randn(50, 5, generator=g), "b": torch.randn(50, 3, generator=g)},
        torch.randint(3, (50,), generator=g),
        present={"b": torch.rand(50, generator=g) > 0.3},
    )
    predictor = FusionModelPredictor(model)
    assert isinstance(predictor, EmbeddingPredictor)
    cached = coalition_values(
        predictor, encode_dataset(predictor, dataset, batch_size=16), metric="log_prob"
    )
    rerun = coalition_values(predictor, dataset, metric="log_prob", batch_size=13)
    assert torch.allclose(cached.values, rerun.values, atol=1e-5)
    # absent in the data stays absent in every coalition
    b_absent = ~dataset.present["b"]
    assert torch.allclose(cached.value(["a", "b"])[b_absent], cached.value(["a"])[b_absent])


def test_interventions() -> None:
    split = make_split(n=200)
    assert set(INTERVENTIONS.names()) == {"remove", "mean", "noise", "permute", "swap"}
    removed = intervene(split, "remove", ["a", "b"])
    assert not removed.present["a"].any() and not removed.present["b"].any()
    assert torch.equal(removed.present["c"], split.present["c"])
    mean = intervene(split, "mean", ["a"])
    expected = split.embeddings["a"][split.present["a"]].mean(0)
    assert torch.allclose(mean.embeddings["a"], expected.expand(200, -1))
    assert mean.present["a"].all()
    noise = intervene(split, "noise", ["a"], seed=1)
    present_rows = split.embeddings["a"][split.present["a"]]
    assert torch.allclose(noise.embeddings["a"].mean(0), present_rows.mean(0), atol=0.25)
    assert torch.allclose(noise.embeddings["a"].std(0), present_rows.std(0), rtol=0.25)
    perm = intervene(split, "permute", ["a", "b"], seed=2)
    assert sorted(perm.donor.tolist()) == list(range(200))
    assert torch.equal(perm.embeddings["b"], split.embeddings["b"][perm.donor])  # joint donor
    assert torch.equal(perm.embeddings["c"], split.embeddings["c"])
    swapped = intervene(split, "swap", ["a"], seed=3)
    assert (split.label[swapped.donor] != split.label).all()
    assert split.present["a"][swapped.donor].all()
    to_two = intervene(split, "swap", ["a"], seed=3, to_class=2)
    assert (split.label[to_two.donor] == 2).all()
    with pytest.raises(ValueError, match="modalities"):
        intervene(split, "remove", ["z"])
    with pytest.raises(KeyError, match="valid names"):
        intervene(split, "blur", ["a"])


def one_hot_split(n: int = 120, classes: int = 4, seed: int = 0) -> EncodedSplit:
    """Modality a = one-hot of the label; modality b = one-hot of an independent class."""
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(classes, (n,), generator=g)
    other = torch.randint(classes, (n,), generator=g)
    emb = {"a": torch.eye(classes)[label], "b": torch.eye(classes)[other]}
    present = {m: torch.ones(n, dtype=torch.bool) for m in emb}
    return EncodedSplit(emb, present, label, torch.arange(n), classes)


def only_a_predictor(classes: int = 4) -> LinearPredictor:
    return LinearPredictor(
        {"a": 5 * torch.eye(classes), "b": torch.zeros(classes, classes)},
        torch.linspace(0, 0.1, classes),
    )


def test_perceptual_score_reference() -> None:
    split = one_hot_split()
    predictor = only_a_predictor()
    table = perceptual_score(predictor, split, num_permutations=3, seed=5)
    pooled = table[
        (table["class"] == "all") & (table["statistic"] == "perceptual_score_normalised")
    ]
    score = dict(zip(pooled["modality"], pooled["value"]))
    assert score["b"] == 0.0  # ignored modality
    # a: accuracy 1; permuted accuracy = P(label[perm] == label); same seeds as the analysis
    drops = []
    for k in range(3):
        perm = torch.randperm(120, generator=torch.Generator().manual_seed(5 + k))
        drops.append(1 - float((split.label[perm] == split.label).double().mean()))
    assert score["a"] == pytest.approx(sum(drops) / 3)


def test_ablation_importance_and_unique_truth_on_reference_model() -> None:
    split = one_hot_split()
    predictor = only_a_predictor()
    table = ablation_importance(predictor, split)
    pooled = table[table["class"] == "all"].set_index("modality")["value"]
    chance_of_bias = float((split.label == 3).double().mean())  # bias argmax = class 3
    assert pooled["a"] == pytest.approx(1 - chance_of_bias)
    assert pooled["b"] == 0
    shares = shapley_values(predictor, split).shares()
    assert shares["a"] == pytest.approx(1.0) and shares["b"] == pytest.approx(0.0)


def test_swap_test_follows_the_modality_the_model_uses() -> None:
    split = one_hot_split()
    predictor = only_a_predictor()
    swap_a = swap_test(predictor, split, "a")
    swap_b = swap_test(predictor, split, "b")
    pooled_a = swap_a[swap_a["class"] == "all"].set_index("statistic")["value"]
    pooled_b = swap_b[swap_b["class"] == "all"].set_index("statistic")["value"]
    assert pooled_a["follows_swapped"] == 1.0 and pooled_b["follows_original"] == 1.0
    pairs = swap_a[(swap_a["class"] != "all") & (swap_a["statistic"] == "follows_swapped")]
    assert len(pairs) == 4 * 3  # every ordered pair of distinct classes
    n_class = torch.bincount(split.label, minlength=4)
    for _, row in pairs.iterrows():
        assert row["n"] == int(n_class[int(row["class"])])


def test_debias_hand_derived() -> None:
    # Z(all) = bias + a + b (log-softmaxed); debiased = Z(all) - Z({b}) keeps a's evidence.
    split = one_hot_split()
    predictor = LinearPredictor({"a": 2 * torch.eye(4), "b": 3 * torch.eye(4)}, torch.zeros(4))
    result = counterfactual_debias(predictor, split, "b")
    assert result.accuracy < 0.5  # b (independent of the label) dominates
    assert result.debiased_accuracy == 1.0
    logits_all = 2 * split.embeddings["a"] + 3 * split.embeddings["b"]
    logits_b = 3 * split.embeddings["b"]
    expected = torch.log_softmax(logits_all.double(), 1) - torch.log_softmax(logits_b.double(), 1)
    assert torch.allclose(result.debiased, expected)
    with pytest.raises(ValueError, match="Cannot debias"):
        counterfactual_debias(predictor, split, "z")


def test_mean_ci_against_scipy() -> None:
    from scipy import stats

    x = torch.tensor([0.2, 0.5, 0.9, 1.4, 0.3, 0.8], dtype=torch.float64)
    mean, low, high = mean_ci(x, confidence=0.9)
    half = stats.norm.ppf(0.95) * stats.sem(x.numpy())
    assert float(mean) == pytest.approx(float(x.mean()))
    assert float(high - mean) == pytest.approx(half) and float(mean - low) == pytest.approx(half)


def test_analyse_table_and_plots() -> None:
    split = make_split(n=90)
    predictor = make_predictor(split)
    report = analyse(
        predictor,
        split,
        analyses=["interventions", "ablation", "perceptual", "shapley", "swap", "debias"],
        debias_modality="a",
    )
    t = report.table
    assert set(t["analysis"]) == {
        "interventions",
        "ablation",
        "perceptual",
        "shapley",
        "interaction",
        "swap",
        "debias",
    }
    shap = t[(t["analysis"] == "shapley") & (t["statistic"] == "shapley") & (t["class"] == "all")]
    assert shap.set_index("modality")["value"].to_dict() == pytest.approx(
        dict(zip(split.modalities, report.shapley.values.mean(0).tolist()))
    )
    # per-class rows aggregate the same per-sample values
    for c in range(3):
        rows = t[
            (t["analysis"] == "shapley") & (t["statistic"] == "shapley") & (t["class"] == str(c))
        ]
        mask = split.label == c
        assert rows["value"].tolist() == pytest.approx(report.shapley.values[mask].mean(0).tolist())
    assert math.isfinite(report.summary().loc["shapley", "a"])
    fig = shapley_bars(t)
    assert [p.get_height() for p in fig.axes[0].patches] == pytest.approx(shap["value"].tolist())
    heat = class_heatmap(t)
    assert heat.axes[0].images[0].get_array().shape == (3, 3)
    swap = swap_matrix(t, "b")
    grid = swap.axes[0].images[0].get_array()
    assert grid.shape == (3, 3) and bool(grid.mask[0, 0])  # diagonal undefined
    with pytest.raises(ValueError, match="debias_modality"):
        analyse(predictor, split, analyses=["debias"])
    with pytest.raises(ValueError, match="Unknown analyses"):
        analyse(predictor, split, analyses=["lime"])


def test_docs_example_runs() -> None:
    import pathlib
    import re

    page = pathlib.Path(__file__).resolve().parents[1] / "docs" / "counterfactual.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(page), "exec"), namespace)
    report = namespace["report"]
    assert set(report.table["analysis"]) == {"shapley", "interaction", "swap"}


def test_cached_missing_rate_curve_equals_re_encoding_and_runs_no_encoder() -> None:
    from modalab.counterfactual import cached_missing_rate_curve
    from modalab.evaluation.missing import missing_rate_curve

    torch.manual_seed(0)
    encoders = nn.ModuleDict({"a": nn.Linear(5, 4), "b": nn.Linear(3, 4), "c": nn.Linear(2, 4)})
    model = LateFusionClassifier(MultimodalEncoder(encoders), ConcatFusion(), nn.Linear(15, 3))
    g = torch.Generator().manual_seed(0)
    n = 1100  # three mask batches of 512
    dataset = MultimodalTensorDataset(
        {m: torch.randn(n, d, generator=g) for m, d in (("a", 5), ("b", 3), ("c", 2))},
        torch.randint(3, (n,), generator=g),
        present={"b": torch.rand(n, generator=g) > 0.3},
    )
    predictor = FusionModelPredictor(model)
    split = encode_dataset(predictor, dataset)
    calls = []
    encoders["a"].register_forward_hook(lambda *_: calls.append(1))
    rates = [0.0, 0.3, 0.7, 1.0]
    cached = cached_missing_rate_curve(predictor, split, rates, seed=2)
    assert not calls  # the cache was enough
    direct = missing_rate_curve(lambda b: model(b.inputs, b.present), dataset, rates, seed=2)
    assert calls  # the reference re-ran the encoders
    assert cached == direct
    assert cached[0].missing_fraction == pytest.approx(
        float((~dataset.present["b"]).sum()) / (3 * n)
    )
    assert len({p.accuracy for p in cached}) > 1  # the masks matter


class FirstPresentView:
    """Predicts the class that the first present view (in order) points at; none: class 0."""

    modalities = ("a", "b", "c")

    def predict(self, embeddings: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        out = torch.zeros_like(embeddings["a"])
        taken = torch.zeros(out.shape[0], dtype=torch.bool)
        for m in self.modalities:
            use = present[m] & ~taken
            out[use] = embeddings[m][use]
            taken |= use
        return out


def test_views_present_and_missing_rate_analyses_against_brute_force() -> None:
    """k-of-M curve: each view right on a planted set of samples, every subset enumerated."""
    n, classes = 300, 4
    generator = torch.Generator().manual_seed(0)
    label = torch.randint(0, classes, (n,), generator=generator)
    planted = {"a": 0.9, "b": 0.6, "c": 0.3}  # per-view accuracy
    right = {m: torch.rand(n, generator=generator) < q for m, q in planted.items()}
    points_at = {m: torch.where(right[m], label, (label + 1) % classes) for m in planted}
    split = EncodedSplit(
        {m: nn.functional.one_hot(points_at[m], classes).float() for m in planted},
        {m: torch.ones(n, dtype=torch.bool) for m in planted},
        label,
        torch.arange(n),
        classes,
    )
    predictor = FirstPresentView()
    table = analyse(predictor, split, ["views_present", "missing_rate"]).table
    views = table[table.analysis == "views_present"]
    for k in (3, 2, 1):
        expected: dict[str, float] = {}
        for subset in itertools.combinations("abc", k):
            hits = 0
            for i in range(n):  # brute force, sample by sample
                first = next(m for m in "abc" if m in subset)
                hits += int(points_at[first][i] == label[i])
            expected["+".join(subset)] = hits / n
        rows = views[(views.target == f"{k} of 3") & (views["class"] == "all")]
        subsets, fused = rows[rows.statistic == "subset"], rows[rows.modality == "fused"]
        assert dict(zip(subsets.modality, subsets.value)) == pytest.approx(expected, abs=1e-12)
        aggregate = dict(zip(fused.statistic, fused.value))
        values = list(expected.values())
        assert aggregate == pytest.approx(
            {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}
        )
    alone = views[(views.target == "1 of 3") & (views["class"] == "all")]
    for m, q in planted.items():  # the planted accuracy, up to the draw
        assert float(alone[alone.modality == m].value.iloc[0]) == pytest.approx(q, abs=0.1)
    per_class = views[(views.modality == "a") & (views["class"] == "2")]
    assert float(per_class.value.iloc[0]) == pytest.approx(
        float(right["a"][label == 2].float().mean())
    )
    curve = table[table.analysis == "missing_rate"]
    accuracy, missing = (
        dict(zip(part.target, part.value))
        for part in (curve[curve.statistic == s] for s in ("accuracy", "missing_fraction"))
    )
    assert len(accuracy) == 10 and accuracy["0"] == pytest.approx(float(right["a"].float().mean()))
    assert missing["0"] == 0.0 and 0.4 < missing["0.5"] < 0.6
    # More views missing, lower accuracy: view a (the best) is lost more often.
    assert accuracy["0.9"] < accuracy["0.5"] < accuracy["0"]
