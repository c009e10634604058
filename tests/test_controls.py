"""Controls as switches: joint-space substitution of an absent modality, unimodal and
random-encoder baselines (planted truth and tiny end-to-end runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from _tiny import TINY_SHAPES
from modalab.evaluation.features import EvalConfig, FeatureSet, evaluate_representations


def aligned_split(n: int, missing_a: float, seed: int) -> FeatureSet:
    """Two modalities whose joint embeddings are the same class direction plus noise.

    ``a`` is precise (noise 0.05) and ``b`` noisy (0.5), so a probe fitted on complete data
    leans on ``a``'s slot; the embeddings share a large common offset, so a zeroed slot is
    far from every class, while ``b``'s embedding is an unbiased stand-in for ``a``'s.
    """
    gen = torch.Generator().manual_seed(seed)
    label = torch.randint(0, 4, (n,), generator=gen)
    protos = torch.eye(8)[:4] + 3.0  # offset: every embedding points the same way roughly
    emb = {
        m: protos[label] + noise * torch.randn(n, 8, generator=gen)
        for m, noise in (("a", 0.05), ("b", 0.5))
    }
    present = {
        "a": torch.rand(n, generator=gen) >= missing_a,
        "b": torch.ones(n, dtype=torch.bool),
    }
    return FeatureSet(
        features={m: torch.randn(n, 4, generator=gen) for m in emb},  # uninformative
        present=present,
        label=label,
        label_observed=torch.ones(n, dtype=torch.bool),
        clean_label=label,
        index=torch.arange(n),
        joint=emb,
    )


def test_substitution_recovers_what_zero_filling_loses() -> None:
    config = EvalConfig(l2_grid=[0.01], retrieval_ks=[1], missing_fill=["zeros", "substitute"])
    train, val = aligned_split(400, 0.0, 0), aligned_split(200, 0.0, 1)
    complete = evaluate_representations(train, val, aligned_split(400, 0.0, 2), 4, config)
    absent = evaluate_representations(train, val, aligned_split(400, 1.0, 2), 4, config)

    def acc(records: list, view: str) -> float:
        return next(
            r.value
            for r in records
            if r.metric == "linear_probe_acc" and r.modality == view and r.condition == "labels=1"
        )

    assert acc(complete, "fused_joint_zeros") > 0.95
    assert acc(complete, "fused_joint_substitute") == acc(complete, "fused_joint_zeros")
    # With `a` absent everywhere: the substituted slot holds b's (aligned) embedding
    # (measured: zeros 0.347, substitute 0.825).
    assert acc(absent, "fused_joint_substitute") > 0.75
    assert acc(absent, "fused_joint_zeros") < acc(absent, "fused_joint_substitute") - 0.3


def test_missing_fill_is_validated() -> None:
    with pytest.raises(ValueError, match="missing_fill"):
        EvalConfig(missing_fill=["mean"]).validate()


TINY = TINY_SHAPES


@pytest.mark.slow
def test_unimodal_baseline_and_random_encoder_switches(tmp_path: Path) -> None:
    import lightning as L
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from modalab.experiments.build import build_data, build_encoders, build_method
    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import run

    out = [f"output_dir={tmp_path}", "trainer.max_epochs=1"]
    uni = run(compose_config([*TINY, *out, "method=supervised", "data.modalities=[image]"]), True)
    views = {r.modality for r in uni.metrics if r.metric == "linear_probe_acc"}
    assert views == {"image", "fused"}
    # trainer.max_epochs=0: the encoders are evaluated as initialised (the random lower bound).
    cfg = compose_config([*TINY, f"output_dir={tmp_path}", "trainer.max_epochs=0"])
    rand = run(cfg, True)
    assert any(r.metric == "linear_probe_acc" for r in rand.metrics)
    saved = load_file(str(rand.run_dir / "model.safetensors"))
    plain = OmegaConf.to_container(cfg, resolve=True)
    L.seed_everything(0, verbose=False)  # as the runner: data, then the model, same seed
    splits = build_data(plain["data"])
    L.seed_everything(0, verbose=False)
    encoder = build_encoders(plain["model"], splits)
    fresh = build_method(plain["method"], encoder, splits, plain["model"]["embed_dim"], seed=0)
    state = fresh.state_dict()
    assert saved.keys() == state.keys()
    assert all(torch.equal(saved[k], state[k]) for k in state)


@pytest.mark.slow
def test_probe_fitted_under_the_obstacle_equals_a_run_whose_probe_sees_it(tmp_path: Path) -> None:
    """eval.probe_fit=both: the extra probe is the one a run with stage=[downstream,test] fits."""
    from modalab.experiments.config import compose_config
    from modalab.experiments.runner import run

    base = [
        *TINY,
        f"output_dir={tmp_path}",
        "trainer.max_epochs=1",
        "method=supervised",
        "scenario=[missing]",
        "scenario.missing.modalities=[image]",
        "scenario.missing.rate=0.7",
        "eval.missing_fill=[substitute]",  # no joint space here: no such view, under either fit
    ]
    both = run(
        compose_config([*base, "scenario.missing.stage=[test]", "eval.probe_fit=both"]), True
    )
    # Its probes already see the obstacle: probe_fit=both adds nothing (no duplicate rows).
    seen = run(
        compose_config([*base, "scenario.missing.stage=[downstream,test]", "eval.probe_fit=both"]),
        True,
    )

    def acc(result, condition: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
        return {
            r.modality: r.value
            for r in result.metrics
            if r.metric == "linear_probe_acc" and r.condition == condition
        }

    under = acc(both, "labels=1,fit=obstacle")
    assert set(under) == set(acc(both, "labels=1")) == {"image", "text", "audio", "fused"}
    assert under == pytest.approx(acc(seen, "labels=1"), abs=1e-6)
    assert not any(r.condition.endswith("fit=obstacle") for r in seen.metrics)
