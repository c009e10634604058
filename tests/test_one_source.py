"""One source of truth: one loss output, one step base, registry-driven counterfactual reports."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor

from modalab.counterfactual import INTERVENTIONS, EncodedSplit, Intervened, analyse
from modalab.counterfactual.report import ANALYSES, intervention_effects
from modalab.data.shapes import make_shapes
from modalab.experiments.config import compose_config
from modalab.experiments.runner import build_encoders, build_method
from modalab.methods import METHODS
from modalab.methods.common import LossStepMethod, NonFiniteError
from modalab.objectives import OBJECTIVES
from modalab.objectives.output import LossOutput

B, D, C = 12, 5, 3
# Two modalities with absent rows; the pair is jointly present in rows 0, 3, 5, 6, 8, 9, 10.
PRESENT = {
    "a": torch.tensor([1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]).bool(),
    "b": torch.tensor([1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1]).bool(),
}


def _joint_rows() -> int:
    """Rows where both modalities are present, counted one by one."""
    return sum(1 for i in range(B) if bool(PRESENT["a"][i]) and bool(PRESENT["b"][i]))


def _embeddings(seed: int) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, D, generator=g, requires_grad=True) for m in PRESENT}


def _pair_call(loss: Any) -> tuple[LossOutput, dict[str, int]]:
    return loss(_embeddings(0), PRESENT), {"a~b": _joint_rows()}


def _target_call(loss: Any) -> tuple[LossOutput, dict[str, int]]:
    return loss(_embeddings(0), _embeddings(1), PRESENT), {"a~b": _joint_rows()}


def _masked_call(loss: Any) -> tuple[LossOutput, dict[str, int]]:
    # valid: the modality is present and so is the other one (something to predict from)
    valid = {m: PRESENT["a"] & PRESENT["b"] for m in PRESENT}
    expected = {m: sum(1 for i in range(B) if bool(valid[m][i])) for m in PRESENT}
    return loss(_embeddings(0), _embeddings(1), valid), expected


def _distill_call(term: str) -> Callable[[Any], tuple[LossOutput, dict[str, int]]]:
    def call(loss: Any) -> tuple[LossOutput, dict[str, int]]:
        student, teacher = _embeddings(0)["a"], _embeddings(1)["b"]
        return loss(student, teacher, PRESENT["a"] & PRESENT["b"]), {term: _joint_rows()}

    return call


def _label_call(term: str) -> Callable[[Any], tuple[LossOutput, dict[str, int]]]:
    def call(loss: Any) -> tuple[LossOutput, dict[str, int]]:
        g = torch.Generator().manual_seed(2)
        logits = torch.randn(B, C, generator=g, requires_grad=True)
        label = torch.randint(C, (B,), generator=g)
        observed = PRESENT["a"]
        return loss(logits, label, observed), {term: sum(bool(o) for o in observed)}

    return call


# How each registered objective is called; a new objective must be added here.
CALLS: dict[str, tuple[dict[str, Any], Callable[[Any], tuple[LossOutput, dict[str, int]]]]] = {
    "clip": ({}, _pair_call),
    "nt_xent": ({"temperature": 0.2}, _pair_call),  # no default: the recipe sets it
    "vicreg": ({}, _pair_call),
    "barlow_twins": ({}, _pair_call),
    "rince": ({}, _pair_call),
    "byol": ({}, _target_call),
    "moco": ({"names": ["a", "b"], "dim": D, "queue_size": 16}, _target_call),
    "masked_modality": ({}, _masked_call),
    "feature_distillation": ({}, _distill_call("cosine")),
    "contrastive_distillation": ({}, _distill_call("contrastive")),
    "soft_label_distillation": ({}, _distill_call("kd")),
    "gce": ({}, _label_call("gce")),
    "sce": ({}, _label_call("sce")),
}


def test_every_registered_objective_has_a_call_here() -> None:
    assert set(OBJECTIVES.names()) == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_objective_returns_one_loss_output_counting_present_rows(name: str) -> None:
    kwargs, call = CALLS[name]
    out, expected = call(OBJECTIVES.get(name)(**kwargs))
    assert type(out) is LossOutput
    assert out.num_rows == expected
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert all(isinstance(v, Tensor) and v.dim() == 0 for v in out.terms.values())
    out.loss.backward()  # the total keeps its graph


SPLITS = make_shapes(n_samples=60, seed=0)


def _build(name: str) -> Any:
    torch.manual_seed(0)
    cfg = compose_config([f"method={name}", "model.embed_dim=16"])
    encoder = build_encoders({"embed_dim": 16, "encoders": {}}, SPLITS)
    return build_method(dict(cfg.method), encoder, SPLITS, 16, seed=0)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_steps_and_optimises_through_the_base(name: str) -> None:
    method = _build(name)
    assert isinstance(method, LossStepMethod)
    for hook in ("training_step", "validation_step", "configure_optimizers", "_step"):
        assert getattr(type(method), hook) is getattr(LossStepMethod, hook), hook
    batch = SPLITS.train.__getitems__(list(range(8)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a Trainer
        loss = method.training_step(batch, 0)
        assert torch.isfinite(loss)
        # A NaN anywhere in the weights: the base refuses the loss, with one message for all.
        with torch.no_grad():
            for p in method.parameters():
                p.fill_(float("nan"))
        with pytest.raises(NonFiniteError, match=r"^The training loss is nan at epoch 0, step 0"):
            method.training_step(batch, 0)


def _split(n: int = 40, seed: int = 0) -> EncodedSplit:
    g = torch.Generator().manual_seed(seed)
    emb = {m: torch.randn(n, 3, generator=g) for m in ("a", "b")}
    present = {m: torch.rand(n, generator=g) > 0.2 for m in emb}
    return EncodedSplit(emb, present, torch.randint(2, (n,), generator=g), torch.arange(n), 2)


class _Linear:
    """logits = sum over present modalities of embedding @ W_m."""

    modalities = ("a", "b")

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(1)
        self.w = {m: torch.randn(3, 2, generator=g) for m in self.modalities}

    def encode(self, batch: Any) -> dict[str, Tensor]:  # pragma: no cover - cached only
        return dict(batch.inputs)

    def predict(self, embeddings: Any, present: Any) -> Tensor:
        return sum(  # type: ignore[return-value]
            (embeddings[m] @ self.w[m]) * present[m].unsqueeze(1).float() for m in self.w
        )


def test_an_intervention_registered_here_appears_in_the_default_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(INTERVENTIONS, "_entries", dict(INTERVENTIONS._entries))

    @INTERVENTIONS.register("negate")
    def negate(split: EncodedSplit, modalities: list[str], generator: Any) -> Intervened:
        """The modality's embedding negated."""
        emb = {m: -e if m in modalities else e for m, e in split.embeddings.items()}
        return Intervened(emb, dict(split.present))

    split, predictor = _split(), _Linear()
    report = analyse(predictor, split, ["interventions"])
    rows = report.table[
        (report.table.target == "negate")
        & (report.table.modality == "a")
        & (report.table["class"] == "all")
        & (report.table.statistic == "value")
    ]
    # Brute force: the accuracy with modality a negated, sample by sample.
    hits = 0
    for i in range(split.num_samples):
        logit = sum(
            (-1 if m == "a" else 1) * split.embeddings[m][i] @ predictor.w[m] * split.present[m][i]
            for m in ("a", "b")
        )
        hits += int(int(torch.as_tensor(logit).argmax()) == int(split.label[i]))
    assert len(rows) == 1
    assert rows.value.iloc[0] == pytest.approx(hits / split.num_samples)
    # Every registered intervention, in registration order, is in the default report.
    targets = list(dict.fromkeys(intervention_effects(predictor, split).target))
    assert targets == ["original", *INTERVENTIONS]


def test_analyses_are_a_registry_run_in_registration_order() -> None:
    order = ["interventions", "ablation", "perceptual", "shapley", "swap", "debias"]
    order += ["missing_rate", "views_present"]
    assert list(ANALYSES) == order
    report = analyse(_Linear(), _split(), ["swap", "ablation"])
    assert list(dict.fromkeys(report.table.analysis)) == ["ablation", "swap"]
    with pytest.raises(ValueError, match="Unknown analyses"):
        analyse(_Linear(), _split(), ["nope"])


def test_a_new_ssl_loss_and_recipe_need_no_edit_of_the_shared_recipe_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An objective (one module) and its recipe (one builder) plug into SiameseMethod as is."""
    from torch import nn

    from modalab.methods.siamese import SiameseMethod, _heads

    monkeypatch.setattr(OBJECTIVES, "_entries", dict(OBJECTIVES._entries))
    monkeypatch.setattr(METHODS, "_entries", dict(METHODS._entries))

    @OBJECTIVES.register("cosine_pairs")
    class CosinePairs(nn.Module):
        """Mean over pairs of 1 - cos over the jointly present rows."""

        def forward(self, z: dict[str, Tensor], present: dict[str, Tensor]) -> LossOutput:
            terms, counts = {}, {}
            names = list(z)
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    rows = present[a] & present[b]
                    cos = torch.nn.functional.cosine_similarity(z[a][rows], z[b][rows], dim=-1)
                    terms[f"{a}~{b}"], counts[f"{a}~{b}"] = (1 - cos).mean(), int(rows.sum())
            return LossOutput(torch.stack(list(terms.values())).mean(), terms, counts)

    @METHODS.register("cosine_recipe")
    def build(encoder: Any, num_classes: int, embed_dim: int, **_: Any) -> SiameseMethod:
        """Cosine alignment across modalities."""
        encoder.projections = _heads(encoder.modalities, embed_dim, 8, 16)
        return SiameseMethod(encoder, CosinePairs(), "", None, None, 0.0, 1e-3, 0.0)

    torch.manual_seed(0)
    encoder = build_encoders({"embed_dim": 16, "encoders": {}}, SPLITS)
    method = METHODS.get("cosine_recipe")(encoder, 3, 16)
    batch = SPLITS.train.__getitems__(list(range(8)))
    batch.present["audio"][[1, 4]] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss = method.training_step(batch, 0)
    # Brute force, row by row: the projections, then 1 - cos over jointly present rows.
    with torch.no_grad():
        z = {m: encoder.projections[m](encoder.encoders[m](x)) for m, x in batch.inputs.items()}
    names, pair_means = list(z), []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            values = [
                1 - float(z[a][r] @ z[b][r] / (z[a][r].norm() * z[b][r].norm()))
                for r in range(8)
                if bool(batch.present[a][r]) and bool(batch.present[b][r])
            ]
            pair_means.append(sum(values) / len(values))
    assert loss.item() == pytest.approx(sum(pair_means) / len(pair_means), rel=1e-5)
