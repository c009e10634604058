"""Every registered method, dataset and scenario composes from its generated config and builds.

The structured configs of ``method=<name>`` are generated from the builders' signatures and
those of ``data=<name>`` from the registrations (``config=``, ``sources=``); these tests read
the signatures again with :mod:`inspect` and compare, compose every option the way the runner
does, build it on tiny data and take a training step.
"""

from __future__ import annotations

import inspect
import pickle
import re
import warnings
from dataclasses import fields

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from _real_data import shared_data_dir
from modalab.catalog import static_catalog
from modalab.data import DATASETS, SOURCES, make_loader
from modalab.data.files import sources_for
from modalab.experiments.config import compose_config
from modalab.experiments.runner import (
    build_data,
    build_encoders,
    build_method,
    build_run_scenarios,
)
from modalab.methods import METHODS
from modalab.methods.registry import SHARED_ARGS, complete_args
from modalab.scenarios import SCENARIOS, apply_scenarios

TINY_DATA = ["data.n_samples=60", "model.embed_dim=16"]


def _hyperparameters(name: str) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a registered builder (the part a user configures)."""
    parameters = inspect.signature(METHODS.get(name)).parameters.values()
    return {p.name: p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


@pytest.mark.parametrize("name", METHODS.names())
def test_method_config_equals_the_builder_signature(name: str) -> None:
    node = compose_config([f"method={name}"]).method
    composed = OmegaConf.to_container(node, resolve=False)
    assert isinstance(composed, dict)
    assert composed.pop("name") == name
    expected = {}
    for key, param in _hyperparameters(name).items():
        assert param.default is not inspect.Parameter.empty, f"{name}.{key} has no default"
        default = list(param.default) if isinstance(param.default, tuple) else param.default
        expected[key] = "${seed}" if key == "seed" else default  # follows the run's seed
    assert composed == expected
    # The context arguments come first and are not configurable.
    positional = [
        p.name
        for p in inspect.signature(METHODS.get(name)).parameters.values()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert positional[:3] == ["encoder", "num_classes", "embed_dim"]
    assert not set(positional) & set(composed)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_parameter_is_described_in_the_registered_builder_docstring(name: str) -> None:
    """Every parameter, context and hyperparameter, once registration added the shared ones."""
    builder = getattr(METHODS.get(name), "func", METHODS.get(name))
    doc = inspect.getdoc(builder) or ""
    assert "\nArgs:\n" in doc, name
    args = doc.split("\nArgs:\n", 1)[1]
    described = re.findall(r"^    (\w+):", args, flags=re.MULTILINE)
    assert len(described) == len(set(described)), described  # none twice
    params = set(inspect.signature(builder).parameters)
    assert set(_hyperparameters(name)) <= set(described)
    assert params <= set(described), params - set(described)


def test_shared_descriptions_fill_only_what_a_builder_leaves_out() -> None:
    def build(encoder, embed_dim, seed=0, *, lr: float = 1e-3):
        """A recipe.

        Args:
            seed: Seed of the masks.
        """

    doc = complete_args(build).__doc__ or ""
    assert "seed: Seed of the masks." in doc and SHARED_ARGS["seed"] not in doc
    assert f"encoder: {SHARED_ARGS['encoder']}" in doc and f"lr: {SHARED_ARGS['lr']}" in doc
    assert doc.index("encoder:") < doc.index("embed_dim:") < doc.index("lr:") < doc.index("seed:")


def test_defaults_users_saw_before_the_configs_were_generated() -> None:
    # Values of the deleted hand-written configs (experiments/method_configs.py and
    # repair_configs.py at bba9a47), which the composed configs must keep.
    cfg = {n: compose_config([f"method={n}", "seed=7"]).method for n in METHODS.names()}
    assert cfg["simclr"].temperature == 0.2 and cfg["clip"].temperature == 0.07
    assert cfg["fusion"].lr == 1e-3 and cfg["vicreg"].proj_hidden == 256
    assert (cfg["grad_blend"].modulation, cfg["grad_blend"].blend) == ("none", "ogb")
    assert (cfg["ogm_ge"].modulation, cfg["ogm_ge"].blend) == ("ogm_ge", "none")
    assert cfg["ogm_ge"].seed == 7 and cfg["supervised_robust"].seed == 7
    assert list(cfg["clip_rince"].modalities) == []
    assert "seed" not in cfg["simclr"]  # the runner passes the seed as context


def test_a_variant_is_the_builder_with_other_defaults() -> None:
    variant, base = _hyperparameters("grad_blend"), _hyperparameters("ogm_ge")
    assert set(variant) == set(base)
    changed = {k for k in base if variant[k].default != base[k].default}
    assert changed == {"modulation", "blend"}


def test_choices_and_ranges_are_checked_when_composing() -> None:
    from modalab.experiments.config import ConfigError

    with pytest.raises(ConfigError, match=r"method.version='v4'.*v2 \| v3"):
        compose_config(["method=moco", "method.version=v4"])
    with pytest.raises(ConfigError, match=r"method.lr=0.0"):
        compose_config(["method=barlow", "method.lr=0"])
    with pytest.raises(ConfigError, match=r"method\.tempreature"):
        compose_config(["method=simclr", "method.tempreature=0.5"])


def test_a_composed_config_pickles() -> None:
    cfg = compose_config(["method=grad_blend", "data=mnist5k"])  # both generated classes
    assert type(OmegaConf.to_object(cfg).method).__name__ == "GradBlendMethodConfig"
    assert pickle.loads(pickle.dumps(cfg)) == cfg


@pytest.mark.slow
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_builds_from_its_defaults_and_trains_a_step(name: str) -> None:
    cfg = compose_config([f"method={name}", *TINY_DATA, "seed=3"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    splits = build_data(plain["data"])
    torch.manual_seed(0)
    encoder = build_encoders(plain["model"], splits)
    method = build_method(plain["method"], encoder, splits, 16, seed=3)
    before = {k: v.detach().clone() for k, v in method.named_parameters() if v.requires_grad}
    trainer = L.Trainer(  # one training step and one validation batch
        max_epochs=20,  # > distill's teacher and finetune's pre-training epochs, which they check
        max_steps=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loaders = (make_loader(s, 16, shuffle=True) for s in (splits.train, splits.val))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(method, *loaders)
    after = dict(method.named_parameters())
    moved = [k for k, v in before.items() if not torch.equal(v, after[k].detach())]
    assert moved, f"no parameter of method={name} changed in one training step"
    assert all(torch.isfinite(after[k]).all() for k in moved)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_composes_from_its_registered_config(name: str) -> None:
    entry = DATASETS.entries(name)[0]
    assert entry.config is not None, f"data={name} is registered without config="
    cfg = compose_config([f"data={name}", "method=supervised"])
    config = OmegaConf.to_object(cfg.data)
    assert isinstance(config, entry.config) and config.name == name
    reference = entry.config()
    for f in fields(reference):
        if f.name != "name":
            assert getattr(config, f.name) == getattr(reference, f.name), f.name
    # The data sources it names exist and are what `modalab data` checks and downloads.
    assert all(source in SOURCES for source in entry.sources), entry.sources
    if entry.sources:
        assert [s.name for s in sources_for(name)] == [SOURCES.get(s).name for s in entry.sources]


def test_datasets_without_files_build_from_their_defaults() -> None:
    digits = build_data(OmegaConf.to_container(compose_config(["data=digits"]).data))
    assert (
        digits.num_classes == 10 and len(digits.train) + len(digits.val) + len(digits.test) == 1797
    )
    shapes = build_data(OmegaConf.to_container(compose_config(TINY_DATA[:1]).data))
    assert len(shapes.train) + len(shapes.val) + len(shapes.test) == 60


#: Scenarios whose default degrades nothing until ``modalities`` names what to degrade.
NAME_MODALITIES = {"downsample": "image"}


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_every_scenario_composes_and_applies_with_its_defaults(name: str) -> None:
    cfg = compose_config([f"scenario=[{name}]", *TINY_DATA])
    plain = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(plain, dict)
    defaults = OmegaConf.to_container(OmegaConf.structured(SCENARIOS.get(name)))
    assert plain["scenario"][name] == defaults
    splits = build_data(plain["data"])
    scenarios = build_run_scenarios(plain["scenario"], splits)
    assert [type(s) for s in scenarios] == [SCENARIOS.get(name)]
    if name in NAME_MODALITIES:
        with pytest.raises(ValueError, match="modalities"):
            apply_scenarios(splits, scenarios, scenarios[0].stage[0], seed=0)
        plain["scenario"][name]["modalities"] = [NAME_MODALITIES[name]]
        scenarios = build_run_scenarios(plain["scenario"], splits)
    if name == "background_noise":  # mixes in real ESC-10 clips
        plain["scenario"][name]["data_dir"] = str(shared_data_dir("esc10/audio"))
        scenarios = build_run_scenarios(plain["scenario"], splits)
    for stage in scenarios[0].stage:
        seen = apply_scenarios(splits, scenarios, stage, seed=0)
        assert len(seen) > 0


def test_the_catalog_lists_every_generated_option() -> None:
    catalog = static_catalog()
    assert catalog["config_groups"]["method"] == METHODS.names()
    assert catalog["config_groups"]["data"] == DATASETS.names()
    for name in METHODS.names():
        assert catalog["method_keys"][name] == list(_hyperparameters(name)), name
