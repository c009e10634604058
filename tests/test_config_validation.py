"""Bad configurations are rejected before any training, with a message naming the problem."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modalab.cli.main import main
from modalab.experiments.config import ConfigError, compose_config

# (overrides, fragments the message must contain)
BAD_CONFIGS = [
    (["data.n_sampls=3"], ["n_sampls", "Valid keys of data", "n_samples"]),
    (["trainer.max_epoch=3"], ["max_epoch", "Valid keys of trainer", "max_epochs"]),
    (["method=simclrr"], ["method/simclrr", "clip", "supervised"]),
    (["data=imagenet"], ["data/imagenet", "shapes"]),
    (["method=supervised", "method.fuson=mean"], ["fuson", "fusion"]),
    (["trainer.max_epochs=many"], ["trainer.max_epochs", "Integer"]),
    (["trainer.max_epochs=-1"], ["trainer.max_epochs=-1", ">= 0"]),
    (["trainer.batch_size=1"], ["trainer.batch_size=1", ">= 2"]),
    (["trainer.precision=bf32"], ["trainer.precision='bf32'", "bf16-mixed"]),
    (["trainer.accelerator=quantum"], ["trainer.accelerator='quantum'", "gpu"]),
    (["trainer.deterministic=always"], ["trainer.deterministic='always'", "true | false | warn"]),
    (["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val=-1.0"]),
    (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches=0"]),
    (["method.lr=-0.1"], ["method.lr=-0.1", "> 0"]),
    (["method.lr=inf"], ["method.lr=inf", "finite"]),
    (["method.weight_decay=-1"], ["method.weight_decay=-1.0"]),
    (["method.temperature=0"], ["method.temperature=0.0", "> 0"]),
    (["method.proj_dim=0"], ["method.proj_dim=0"]),
    (["method=supervised", "method.fusion=sum"], ["method.fusion='sum'", "concat | mean"]),
    (["model.embed_dim=0"], ["model.embed_dim=0"]),
    (["eval.label_fractions=[0.5,1.5]"], ["eval.label_fractions=[0.5, 1.5]", "(0, 1]"]),
    (["eval.label_fractions=[]"], ["eval.label_fractions=[]"]),
    (["eval.l2_grid=[0.0]"], ["eval.l2_grid=[0.0]", "positive"]),
    (["eval.knn_k=0"], ["eval.knn_k=0"]),
    (["eval.retrieval_ks=[0]"], ["eval.retrieval_ks=[0]"]),
    (["data.n_samples=5"], ["data.n_samples", "at least 10"]),
    (["data.noise.text=1.5"], ["data.noise.text=1.5", "[0, 1]"]),
    (["data.noise.image=-0.1"], ["data.noise.image=-0.1"]),
    (["data.modalities=[image,video]"], ["unknown modality 'video'", "image", "text", "audio"]),
    (["data.label_rule=xor"], ["label_rule='xor'", "sum_mod"]),
    (["data.label_factors=[hue]"], ["label_factors=['hue']", "shape"]),
    (["data.val_fraction=0.7", "data.test_fraction=0.5"], ["sum to less than 1"]),
    (["data.carries.image=[hue]"], ["unknown factor 'hue'", "colour"]),
    (["scenario=[missing]", "scenario.missing.rate=1.5"], ["missing.rate", "[0, 1]", "1.5"]),
    (["scenario=[missing]", "scenario.missing.rate=-0.1"], ["missing.rate", "-0.1"]),
    (
        ["scenario=[missing]", "scenario.missing.modalities=[video]"],
        ["scenario.missing.modalities=['video']", "'video'", "data.modalities"],
    ),
    (
        [
            "data.modalities=[image,text]",
            "scenario=[missing]",
            "scenario.missing.modalities=[audio]",
        ],
        ["['audio']", "data.modalities=['image', 'text']"],
    ),
    (["scenario=[label_noise]", "scenario.label_noise.rate=2"], ["label_noise.rate", "2.0"]),
    (["scenario=[gaussian_noise]", "scenario.gaussian_noise.snr_db=abc"], ["snr_db", "Float"]),
    (["scenario=[missing]", "scenario.missing.stage=[later]"], ["['later']", "pretrain"]),
    (["scenario=[teleport]"], ["scenario", "teleport"]),
    (["data=avmnist", "data.on_error=ignore"], ["data.on_error='ignore'", "skip"]),
    (["data=manifest", "data.on_error=warn"], ["data.on_error='warn'", "raise"]),
    (["seed=-1"], ["seed=-1"]),
    (["seed=abc"], ["seed", "Integer"]),
]


@pytest.mark.parametrize(
    ("overrides", "fragments"), BAD_CONFIGS, ids=[" ".join(o) for o, _ in BAD_CONFIGS]
)
def test_bad_config_is_rejected_with_a_message_naming_it(
    overrides: list[str], fragments: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        compose_config(overrides)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_cli_validates_every_run_before_training_any(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The second run of the list is invalid: the first must not start either.
    code = main(["run", "--quiet", "trainer.max_epochs=1,-1", f"output_dir={tmp_path}"])
    assert code == 2
    assert "trainer.max_epochs=-1" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


_FIELDS = {
    "method.lr": st.floats(max_value=0, allow_nan=False, allow_infinity=False),
    "method.weight_decay": st.floats(max_value=-1e-9, allow_nan=False, allow_infinity=False),
    "method.temperature": st.floats(max_value=0, allow_nan=False, allow_infinity=False),
    "trainer.max_epochs": st.integers(max_value=-1),  # 0 is valid: no training (random init)
    "trainer.batch_size": st.integers(max_value=1),
    "model.embed_dim": st.integers(max_value=0),
    "eval.knn_k": st.integers(max_value=0),
    "data.val_fraction": st.floats(min_value=1, max_value=1e6, allow_nan=False),
    "data.noise.text": st.floats(min_value=1.0001, max_value=1e6, allow_nan=False),
    "data.noise.audio": st.floats(max_value=-1e-6, min_value=-1e6, allow_nan=False),
}


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_out_of_range_values_are_rejected(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(sorted(_FIELDS)))
    value = data.draw(_FIELDS[key])
    with pytest.raises(ConfigError) as info:
        compose_config([f"{key}={value!r}"])
    assert key in str(info.value)


@pytest.mark.slow
@settings(max_examples=20, deadline=None)
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
def test_generated_unknown_keys_are_rejected(name: str) -> None:
    valid = {
        "n_samples",
        "modalities",
        "carries",
        "label_factors",
        "label_rule",
        "noise",
        "image_size",
        "text_length",
        "audio_length",
        "val_fraction",
        "test_fraction",
        "seed",
        "name",
    }
    if name in valid:
        return
    with pytest.raises(ConfigError, match=f"Key '{name}' not in"):
        compose_config([f"data.{name}=1"])
