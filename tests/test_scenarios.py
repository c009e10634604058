"""Scenarios: each severity does what it says, seeded reproduction, no leakage."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.data import MultimodalTensorDataset, make_shapes
from modalab.scenarios import (
    SCENARIOS,
    BackgroundNoise,
    Blur,
    Downsample,
    GaussianNoise,
    LabelNoise,
    LabelScarcity,
    Misalignment,
    MissingModality,
    Occlusion,
    SemiPaired,
    WordDropout,
    apply_scenarios,
    build_scenarios,
    snr_db,
)


def _dataset(n: int = 4000, classes: int = 4) -> MultimodalTensorDataset:
    g = torch.Generator().manual_seed(123)
    return MultimodalTensorDataset(
        {
            "image": torch.rand(n, 3, 8, 8, generator=g) + 0.1,
            "text": torch.randint(4, 30, (n, 10), generator=g),
            "audio": torch.randn(n, 1, 64, generator=g),
        },
        label=torch.randint(classes, (n,), generator=g),
        num_classes=classes,
    )


def _within(measured: float, expected: float, n: int, sigmas: float = 4.0) -> bool:
    """|measured - expected| within `sigmas` binomial standard errors."""
    se = math.sqrt(max(expected * (1 - expected), 1e-12) / n)
    return abs(measured - expected) <= sigmas * se + 1e-12


# ---- missing modality -----------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 0.9, 1.0])
def test_missing_rate_matches_configuration(rate: float) -> None:
    ds = _dataset()
    out = MissingModality(rate=rate, modalities=["audio"]).set_random_state(7)(ds)
    measured = 1 - out.present["audio"].float().mean().item()
    assert _within(measured, rate, len(ds))
    assert out.present["image"].all() and out.present["text"].all()
    absent = ~out.present["audio"]
    assert (out.inputs["audio"][absent] == 0).all()
    assert torch.equal(out.inputs["audio"][~absent], ds.inputs["audio"][~absent])


def test_missing_reproduces_an_independent_seeded_draw() -> None:
    ds = _dataset(500)
    out = MissingModality(rate=0.3, modalities=["text"]).set_random_state(11)(ds)
    expected = torch.rand(500, generator=torch.Generator().manual_seed(11)) < 0.3
    assert torch.equal(~out.present["text"], expected)


def test_missing_several_modalities_reproduce_an_independent_seeded_draw() -> None:
    # drop_modalities draws one [N, T] uniform tensor over the targets (in dataset order)
    ds = _dataset(500)
    scenario = MissingModality(modalities=["text", "image"], rates={"text": 0.6, "image": 0.3})
    out = scenario.set_random_state(4)(ds)
    draws = torch.rand(500, 2, generator=torch.Generator().manual_seed(4))
    assert torch.equal(~out.present["image"], draws[:, 0] < 0.3)
    assert torch.equal(~out.present["text"], draws[:, 1] < 0.6)
    assert out.present["audio"].all()


def test_missing_per_modality_rates_and_independence() -> None:
    ds = _dataset(6000)
    out = MissingModality(rates={"image": 0.2, "audio": 0.6}).set_random_state(1)(ds)
    mi, ma = ~out.present["image"], ~out.present["audio"]
    assert _within(mi.float().mean().item(), 0.2, 6000)
    assert _within(ma.float().mean().item(), 0.6, 6000)
    assert out.present["text"].all()  # not listed: rates name the targets
    assert _within((mi & ma).float().mean().item(), 0.12, 6000)


def test_missing_at_least_one_keeps_a_modality_and_has_the_predicted_rate() -> None:
    ds = _dataset(6000)
    r, m = 0.7, 3
    out = MissingModality(rate=r, mode="at_least_one").set_random_state(2)(ds)
    present = torch.stack([out.present[k] for k in ds.modalities], dim=1)
    assert present.any(dim=1).all()
    for k in ds.modalities:
        assert _within(1 - out.present[k].float().mean().item(), r - r**m / m, 6000)


def test_semi_paired_exact_fraction_and_unimodal_rest() -> None:
    ds = _dataset(1000)
    out = SemiPaired(paired_fraction=0.3).set_random_state(0)(ds)
    present = torch.stack([out.present[k] for k in ds.modalities], dim=1)
    counts = present.sum(dim=1)
    assert int((counts == 3).sum()) == 300
    assert int((counts == 1).sum()) == 700
    kept = present[counts == 1].float().mean(0)  # uniform choice of the kept modality
    assert all(_within(float(p), 1 / 3, 700) for p in kept)


# ---- noise ----------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [30.0, 10.0, 0.0, -5.0])
def test_gaussian_noise_snr_measured_on_the_output(snr: float) -> None:
    ds = _dataset(200)
    out = GaussianNoise(snr_db=snr, modalities=["image", "audio"]).set_random_state(3)(ds)
    for m in ("image", "audio"):
        measured = snr_db(ds.inputs[m], out.inputs[m])
        assert torch.allclose(measured, torch.full_like(measured, snr), atol=1e-4)
    assert torch.equal(out.inputs["text"], ds.inputs["text"])


def test_gaussian_noise_on_uint8_pixels_neither_noop_nor_wraps() -> None:
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (100, 3, 8, 8), generator=g, dtype=torch.uint8)
    ds = MultimodalTensorDataset({"image": pixels}, label=torch.zeros(100).long())
    out = GaussianNoise(snr_db=5.0).set_random_state(0)(ds)
    noisy = out.inputs["image"]
    assert noisy.is_floating_point()  # no uint8 wrap-around
    measured = snr_db(pixels.float(), noisy)
    assert torch.allclose(measured, torch.full_like(measured, 5.0), atol=1e-4)
    noise_std = (noisy - pixels.float()).std().item()  # on the 0-255 scale, not 0-1
    expected = math.sqrt(pixels.float().pow(2).mean().item() / 10**0.5)
    assert abs(noise_std - expected) / expected < 0.05


def test_gaussian_noise_clip_and_infinite_snr() -> None:
    ds = _dataset(50)
    clean = GaussianNoise(snr_db=math.inf, modalities=["image"])(ds)
    assert torch.equal(clean.inputs["image"], ds.inputs["image"])
    clipped = GaussianNoise(snr_db=0.0, modalities=["image"], clip=[0.0, 1.0])(ds)
    assert clipped.inputs["image"].min() >= 0 and clipped.inputs["image"].max() <= 1
    with pytest.raises(ValueError, match="word_dropout"):
        GaussianNoise(snr_db=0.0, modalities=["text"])(ds)
    with pytest.raises(ValueError, match="snr_db"):
        GaussianNoise(snr_db=-math.inf)


def test_noise_spares_absent_rows_and_fraction_is_exact() -> None:
    ds = MissingModality(rate=0.5, modalities=["image"]).set_random_state(0)(_dataset(400))
    out = GaussianNoise(snr_db=0.0, modalities=["image"], fraction=0.5).set_random_state(0)(ds)
    changed = (out.inputs["image"] != ds.inputs["image"]).flatten(1).any(1)
    assert not changed[~ds.present["image"]].any()
    allowed = GaussianNoise(snr_db=0.0, modalities=["image"], fraction=0.5).set_random_state(0)
    allowed.randomize(ds)
    rows, _ = allowed._noise["image"]
    assert torch.equal(changed, rows)


def test_occlusion_areas_are_exact() -> None:
    ds = MultimodalTensorDataset(
        {"image": torch.ones(20, 3, 20, 20), "audio": torch.ones(20, 1, 100)},
        label=torch.zeros(20).long(),
    )
    out = Occlusion(area=0.25).set_random_state(4)(ds)
    assert ((out.inputs["image"] == 0).flatten(1).sum(1) == 3 * 10 * 10).all()
    assert ((out.inputs["audio"] == 0).flatten(1).sum(1) == 25).all()
    # each occluded image region is one contiguous square
    holes = (out.inputs["image"][:, 0] == 0).float()
    rows, cols = holes.sum(2).gt(0).sum(1), holes.sum(1).gt(0).sum(1)
    assert (rows == 10).all() and (cols == 10).all()


def test_blur_matches_a_reference_gaussian_convolution() -> None:
    sigma = 1.2
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ds = MultimodalTensorDataset({"image": x}, label=torch.zeros(2).long())
    out = Blur(sigma=sigma)(ds).inputs["image"]
    k = 2 * math.ceil(3 * sigma) + 1
    t = torch.arange(k, dtype=torch.float32) - k // 2
    w = torch.exp(-(t**2) / (2 * sigma**2))
    w = w / w.sum()
    kernel = (w[:, None] * w[None, :]).expand(3, 1, k, k)
    padded = F.pad(x, (k // 2,) * 4, mode="reflect")
    reference = F.conv2d(padded, kernel, groups=3)
    assert torch.allclose(out, reference, atol=1e-5)


def test_downsample_removes_the_highest_frequency() -> None:
    checker = ((torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2).float()
    x = checker.expand(2, 1, 8, 8).clone()
    ds = MultimodalTensorDataset({"image": x}, label=torch.zeros(2).long())
    out = Downsample(factor=2.0, modalities=["image"])(ds).inputs["image"]
    assert out.shape == x.shape
    assert torch.allclose(out, torch.full_like(out, 0.5))
    same = Downsample(factor=1.0, modalities=["image"])(ds).inputs["image"]
    assert torch.equal(same, x)


@pytest.mark.parametrize("mode", ["replace", "mask", "drop"])
def test_word_dropout_rate_and_modes(mode: str) -> None:
    ds = _dataset(2000)
    special = [0, 1, 2, 3]
    wd = WordDropout(rate=0.3, mode=mode, special_ids=special, vocab_size=30, mask_id=3)
    out = wd.set_random_state(5)(ds).inputs["text"]
    before = ds.inputs["text"]
    if mode == "mask":
        assert _within((out == 3).float().mean().item(), 0.3, before.numel())
    elif mode == "replace":
        # a replacement equals the original with probability 1 / (number of words)
        changed = (out != before).float().mean().item()
        assert _within(changed, 0.3 * (1 - 1 / 26), before.numel())
        assert not torch.isin(out, torch.tensor(special)).any()
    else:
        kept = (out != 0).sum(1)
        assert _within(1 - kept.sum().item() / before.numel(), 0.3, before.numel())
        for row in range(20):  # the remaining words keep their order
            remaining = out[row][out[row] != 0].tolist()
            it = iter(before[row].tolist())
            assert all(tok in it for tok in remaining)


def _data_dir() -> Path:
    default = Path(__file__).parents[1] / ".." / "shared" / "data"
    root = os.environ.get("MODALAB_DATA") or str(default)
    path = Path(root)
    if not (path / "esc10" / "audio").exists():
        pytest.skip(f"ESC-10 clips not found under {path} (set MODALAB_DATA)")
    return path


def test_background_noise_mixes_real_clips_at_the_snr() -> None:
    data_dir = _data_dir()
    ds = _dataset(64)
    scenario = BackgroundNoise(snr_db=5.0, data_dir=str(data_dir), sample_rate=4000)
    out = scenario.set_random_state(0)(ds)
    measured = snr_db(ds.inputs["audio"], out.inputs["audio"])
    assert torch.allclose(measured, torch.full_like(measured, 5.0), atol=1e-3)
    noise = (out.inputs["audio"] - ds.inputs["audio"]).flatten(1)
    # real noise, not white: neighbouring samples of environmental sound are correlated
    corr = F.cosine_similarity(noise[:, 1:], noise[:, :-1], dim=1)
    assert corr.mean() > 0.3
    again = BackgroundNoise(snr_db=5.0, data_dir=str(data_dir), sample_rate=4000)
    assert torch.equal(again.set_random_state(0)(ds).inputs["audio"], out.inputs["audio"])


def test_background_noise_explains_missing_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MODALAB_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # the default ~/.modalab/data does not exist
    with pytest.raises(ValueError, match="MODALAB_DATA") as info:
        BackgroundNoise(snr_db=5.0, sample_rate=4000)(_dataset(8))
    assert str(tmp_path / ".modalab" / "data" / "esc10" / "audio") in str(info.value)


def _noise_clips(folder: Path, seed: int) -> None:
    import soundfile

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    for k in range(2):
        clip = torch.randn(400, generator=g).cumsum(0)  # correlated, like real noise
        soundfile.write(folder / f"{k}.wav", (clip / clip.abs().max()).numpy(), 4000)


def test_background_noise_finds_clips_by_the_data_dir_rule(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the one rule of modalab.data.files.resolve_data_dir: argument, $MODALAB_DATA, default
    _noise_clips(tmp_path / "arg" / "esc10" / "audio", 0)
    _noise_clips(tmp_path / "env" / "esc10" / "audio", 1)
    _noise_clips(tmp_path / "home" / ".modalab" / "data" / "esc10" / "audio", 2)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ds = _dataset(16)

    def noise(data_dir: str = "") -> Tensor:
        scenario = BackgroundNoise(snr_db=0.0, data_dir=data_dir, sample_rate=4000)
        return scenario.set_random_state(0)(ds).inputs["audio"]

    arg, env = str(tmp_path / "arg"), str(tmp_path / "env")
    default = str(tmp_path / "home" / ".modalab" / "data")
    assert not torch.equal(noise(arg), noise(env))  # the clip folders differ
    monkeypatch.setenv("MODALAB_DATA", env)
    assert torch.equal(noise(), noise(env))  # no argument: $MODALAB_DATA
    assert not torch.equal(noise(arg), noise())  # the argument wins over $MODALAB_DATA
    monkeypatch.setenv("MODALAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="nowhere"):  # no silent fallback past the variable
        noise()
    monkeypatch.delenv("MODALAB_DATA")
    assert torch.equal(noise(), noise(default))  # else ~/.modalab/data
    assert not torch.equal(noise(), noise(env))


# ---- misalignment ---------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.7, 1.0])
def test_misalignment_shuffles_exactly_the_fraction(rate: float) -> None:
    ds = _dataset(500)
    out = Misalignment(rate=rate, modality="audio").set_random_state(9)(ds)
    moved = out.extras["misaligned"]
    assert int(moved.sum()) == (round(rate * 500) if round(rate * 500) >= 2 else 0)
    source = out.extras["audio_source_index"]
    assert (source[moved] != ds.index[moved]).all()
    assert torch.equal(source[~moved], ds.index[~moved])
    assert sorted(source[moved].tolist()) == sorted(ds.index[moved].tolist())
    assert torch.equal(out.inputs["audio"], ds.inputs["audio"][source])
    assert torch.equal(out.inputs["image"], ds.inputs["image"])
    batch = out.__getitems__([3, 4])  # the bookkeeping travels with the samples
    assert torch.equal(batch.extras["misaligned"], moved[[3, 4]])


# ---- labels ---------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.6])
def test_symmetric_label_noise_rate_and_uniform_targets(rate: float) -> None:
    ds = _dataset(8000, classes=5)
    out = LabelNoise(rate=rate).set_random_state(0)(ds)
    wrong = out.label != out.clean_label
    assert torch.equal(out.clean_label, ds.label)
    assert _within(wrong.float().mean().item(), rate, 8000)
    if rate > 0:
        offsets = (out.label[wrong] - out.clean_label[wrong]) % 5
        share = torch.bincount(offsets, minlength=5)[1:].float() / wrong.sum()
        assert all(_within(float(s), 0.25, int(wrong.sum())) for s in share)


def test_asymmetric_label_noise_flips_to_the_next_class() -> None:
    ds = _dataset(8000, classes=4)
    out = LabelNoise(rate=0.4, mode="asymmetric").set_random_state(1)(ds)
    wrong = out.label != out.clean_label
    assert _within(wrong.float().mean().item(), 0.4, 8000)
    assert torch.equal(out.label[wrong], (out.clean_label[wrong] + 1) % 4)
    for c in range(4):  # class-conditional: the rate holds within each class
        rows = out.clean_label == c
        assert _within(wrong[rows].float().mean().item(), 0.4, int(rows.sum()))


def test_label_scarcity_fraction_and_per_class() -> None:
    ds = _dataset(1000)
    counts = torch.bincount(ds.label, minlength=4)
    out = LabelScarcity(fraction=0.1).set_random_state(0)(ds)
    observed = torch.bincount(out.label[out.label_observed], minlength=4)
    assert observed.tolist() == [max(1, round(0.1 * int(c))) for c in counts]
    out = LabelScarcity(per_class=5).set_random_state(0)(ds)
    assert torch.bincount(out.label[out.label_observed], minlength=4).tolist() == [5, 5, 5, 5]


# ---- determinism, composition, stages ------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS.names())
def test_every_scenario_is_deterministic_by_seed(name: str) -> None:
    params = {
        "missing": {"rate": 0.5},
        "semi_paired": {"paired_fraction": 0.5},
        "gaussian_noise": {"snr_db": 5.0},
        "occlusion": {"area": 0.3},
        "blur": {"sigma": 1.0},
        "background_noise": {"snr_db": 5.0, "sample_rate": 4000},
        "word_dropout": {"rate": 0.5, "special_ids": [0, 1, 2, 3], "vocab_size": 30},
        "downsample": {"factor": 2.0, "modalities": ["image"]},
        "misalign": {"rate": 0.5},
        "label_scarcity": {"fraction": 0.3},
        "label_noise": {"rate": 0.5},
    }[name]
    if name == "background_noise":
        params["data_dir"] = str(_data_dir())
    ds = _dataset(200)
    a = SCENARIOS.get(name)(**params).set_random_state(3)(ds)
    b = SCENARIOS.get(name)(**params).set_random_state(3)(ds)
    c = SCENARIOS.get(name)(**params).set_random_state(4)(ds)
    fields = lambda d: [*d.inputs.values(), *d.present.values(), d.label, d.label_observed]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(fields(a), fields(b)))
    if name != "blur" and name != "downsample":  # deterministic transforms
        assert not all(torch.equal(x, y) for x, y in zip(fields(a), fields(c)))
    assert all(torch.equal(x, y) for x, y in zip(fields(ds), fields(_dataset(200))))  # input intact


def test_stages_do_not_leak_into_evaluation_data() -> None:
    splits = make_shapes(n_samples=300, seed=0)
    scenarios = build_scenarios(
        {
            "missing": {"rate": 0.5, "stage": ["pretrain"]},
            "label_noise": {"rate": 0.5, "stage": ["pretrain", "downstream"]},
        },
        splits.info,
    )
    pretrain = apply_scenarios(splits, scenarios, "pretrain", seed=0)
    downstream = apply_scenarios(splits, scenarios, "downstream", seed=0)
    val = apply_scenarios(splits, scenarios, "val", seed=0)
    test = apply_scenarios(splits, scenarios, "test", seed=0)
    assert not pretrain.present["audio"].all()
    assert all(downstream.present[m].all() for m in downstream.modalities)
    assert torch.equal(pretrain.label, downstream.label)  # same draw on the same split
    assert not torch.equal(downstream.label, splits.train.label)
    for clean, seen in ((splits.val, val), (splits.test, test)):
        assert seen is clean  # untouched: no scenario applies
    again = apply_scenarios(splits, scenarios, "pretrain", seed=0)
    assert torch.equal(again.present["audio"], pretrain.present["audio"])
    other = apply_scenarios(splits, scenarios, "pretrain", seed=1)
    assert not torch.equal(other.present["audio"], pretrain.present["audio"])


def test_scenarios_compose_in_order_and_bind_to_data_info() -> None:
    splits = make_shapes(n_samples=200, seed=0)
    scenarios = build_scenarios(
        {
            "word_dropout": {"rate": 1.0, "mode": "mask"},
            "missing": {"rate": 1.0, "modalities": ["text"]},
        },
        splits.info,
    )
    assert scenarios[0].special_ids == splits.info.special_ids  # type: ignore[attr-defined]
    out = apply_scenarios(splits, scenarios, "test")
    assert (out.inputs["text"] == 0).all() and not out.present["text"].any()


def test_invalid_parameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"missing.rate must be in \[0, 1\]"):
        MissingModality(rate=1.5)
    with pytest.raises(ValueError, match="stage"):
        MissingModality(stage=["training"])
    with pytest.raises(ValueError, match="does not have"):
        MissingModality(rate=0.1, modalities=["video"])(_dataset(10))
    with pytest.raises(KeyError, match="valid names"):
        build_scenarios({"dropout": {}})


def test_scenario_config_group_composes_and_validates() -> None:
    from modalab.experiments.config import ConfigError, compose_config

    cfg = compose_config(["scenario=[label_noise,missing]", "scenario.missing.rate=0.25"])
    assert list(cfg.scenario) == ["label_noise", "missing"]  # composition order kept
    assert cfg.scenario.missing.rate == 0.25 and list(cfg.scenario.missing.stage) == [
        "pretrain",
        "downstream",
        "test",
    ]
    assert dict(compose_config([]).scenario) == {}
    with pytest.raises(ConfigError, match=r"missing.rate must be in \[0, 1\]"):
        compose_config(["scenario=[missing]", "scenario.missing.rate=2"])
    with pytest.raises(ConfigError, match="rat"):
        compose_config(["scenario=[missing]", "scenario.missing.rat=0.1"])
    with pytest.raises(ConfigError, match=r"Valid options for scenario=.*label_noise"):
        compose_config(["scenario=[dropout]"])
