"""AV-MNIST for the method comparison and robustness studies: waveform-domain background noise
on the log-mel audio, masked patches on spectrograms, methods that do not apply, the study."""

import importlib.util
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from _real_data import REPO, shared_data_dir
from modalab.data import DataInfo
from modalab.data.avmnist import make_avmnist, waveform_features
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.sweep import expand_study, load_study
from modalab.methods.masked import MaskedModellingMethod, pad_to_patches, patchify
from modalab.scenarios import apply_scenarios, build_scenarios
from modalab.scenarios.noise import snr_db


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def splits(cache):
    root = shared_data_dir("mnist", "fsdd/recordings")
    return make_avmnist(
        data_dir=str(root),
        cache_dir=str(cache),
        max_images=300,
        keep_waveforms=True,
        protocol="clean",
    )


def test_waveform_features_reproduce_the_dataset_audio(splits):
    test = splits.test
    waves = splits.info.waveforms["audio"][test.extras["audio_recording"]]
    assert waves.shape == (len(test), 8000)
    recomputed = waveform_features(waves, splits.info.audio_features["audio"])
    torch.testing.assert_close(recomputed, test.inputs["audio"])


def test_background_noise_is_mixed_into_the_waveform_at_the_snr(splits):
    root = shared_data_dir("esc10/audio")
    config = {"snr_db": 3.0, "fraction": 0.5, "stage": ["test"], "data_dir": str(root)}
    scenario = build_scenarios({"background_noise": config}, splits.info)[0]
    noisy = apply_scenarios(splits, [scenario], "test", seed=1)
    clean = splits.test
    rows, crops = scenario._draw
    assert int(rows.sum()) == round(0.5 * len(clean))
    # Rows left clean keep their input exactly; the others are the features of the mixture.
    torch.testing.assert_close(noisy.inputs["audio"][~rows], clean.inputs["audio"][~rows])
    waves = splits.info.waveforms["audio"][clean.extras["audio_recording"]][rows]
    noise = crops[rows]
    # Reference: the gain that makes P(wave) / P(gain * noise) = 10^(3/10), per sample.
    gain = torch.sqrt(waves.double().pow(2).mean(1) / 10**0.3 / noise.double().pow(2).mean(1))
    mixture = waves + gain.float().unsqueeze(1) * noise
    measured = snr_db(waves, mixture)
    torch.testing.assert_close(measured, torch.full_like(measured, 3.0), atol=1e-4, rtol=0)
    expected = waveform_features(mixture, splits.info.audio_features["audio"])
    torch.testing.assert_close(noisy.inputs["audio"][rows], expected, atol=1e-4, rtol=1e-4)
    # The training split (pre-training, probes) is untouched.
    assert torch.equal(
        apply_scenarios(splits, [scenario], "pretrain").inputs["audio"],
        splits.train.inputs["audio"],
    )


def test_background_noise_on_a_spectrogram_without_waveforms_says_how_to_fix(splits):
    root = shared_data_dir("esc10/audio")
    # The info of data=avmnist without keep_waveforms: no waveforms, no feature recipe.
    scenario = build_scenarios(
        {"background_noise": {"snr_db": 0.0, "stage": ["test"], "data_dir": str(root)}},
        DataInfo(sample_rates={"audio": 8000}),
    )
    with pytest.raises(ValueError, match=r"spectrogram.*data.keep_waveforms=true"):
        apply_scenarios(splits, scenario, "test")


def test_masked_patches_pad_sides_that_are_not_multiples_of_the_patch():
    x = torch.arange(2 * 5 * 7, dtype=torch.float32).view(2, 1, 5, 7) + 1
    padded = pad_to_patches(x, 3)
    reference = torch.zeros(2, 1, 6, 9)
    reference[:, :, :5, :7] = x
    torch.testing.assert_close(padded, reference)
    assert pad_to_patches(x, 1) is x
    fake = SimpleNamespace(generator=torch.Generator().manual_seed(0), mask_prob=0.5)
    hidden, patches, masked = MaskedModellingMethod._mask_patches(fake, x, 3)  # type: ignore[arg-type]
    assert hidden.shape == x.shape
    torch.testing.assert_close(patches, patchify(reference, 3))
    # Reference: every pixel whose 3×3 patch (row-major over the 2×3 grid) is masked is zero.
    grid = masked.view(2, 2, 3)
    keep = ~grid.repeat_interleave(3, 1).repeat_interleave(3, 2)[:, :5, :7]
    torch.testing.assert_close(hidden, x * keep.unsqueeze(1))
    assert 0 < int(masked.sum()) < masked.numel()


def test_methods_that_need_text_fail_on_avmnist_with_the_reason(splits, cache, tmp_path):
    from modalab.experiments.runner import run

    root = shared_data_dir("mnist", "fsdd/recordings")
    cfg = compose_config(
        [
            "data=avmnist",
            f"data.data_dir={root}",
            f"data.cache_dir={cache}",  # the fixture's build is reused from the cache
            "data.max_images=300",
            "data.keep_waveforms=true",
            "data.protocol=clean",
            "method=coca",
            f"output_dir={tmp_path}",
        ]
    )
    with pytest.raises(ConfigError, match=r"caption_modality='text' is not a modality"):
        run(cfg, quiet=True)


def test_avmnist_robustness_study_expands_to_the_documented_grid():
    spec = load_study(REPO / "studies" / "avmnist_robustness.yaml")
    # 3 methods × (3 missing rates + 3 SNRs) × 5 seeds, on avmnist with waveforms.
    assert set(spec.methods) == {"clip", "supervised", "vicreg"}
    assert sum(len(s.values) for s in spec.scenarios.values()) == 6
    assert spec.seeds == [0, 1, 2, 3, 4] and spec.seed_data
    assert "data.keep_waveforms=true" in spec.datasets["avmnist"]
    # The smoke grid composes (it is what CI runs): first and last level, one seed, tiny data.
    smoke, store = expand_study(spec, smoke=True)
    assert store == "results/avmnist_robustness_smoke"
    assert len(smoke) == 3 * 2 * 2 * 1
    assert all("data.max_images=300" in r.overrides for r in smoke)
    assert all("trainer.max_epochs=1" in r.overrides for r in smoke)


def _method_table():
    path = REPO / "scripts" / "method_table.py"
    spec = importlib.util.spec_from_file_location("method_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["method_table"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_method_table_replaces_only_its_own_section():
    table = _method_table()
    page = (
        "# Methods compared\n\nintro\n\n<!-- method_table:shapes begin -->\nOLD SHAPES\n"
        "<!-- method_table:shapes end -->\n"
    )
    avm = "<!-- method_table:avmnist begin -->\nAVM 1\n<!-- method_table:avmnist end -->"
    once = table.update_page(page, avm, "avmnist")
    assert once == page + "\n" + avm + "\n"
    avm2 = avm.replace("AVM 1", "AVM 2")
    twice = table.update_page(once, avm2, "avmnist")
    assert twice == page + "\n" + avm2 + "\n"
    assert math.isclose(len(twice) - len(once), 0)
    assert Path(table.__file__).name == "method_table.py"
    # The AV-MNIST grid is the shapes grid with the text-only parts renamed.
    assert [o for _, o in table.GRID_AVMNIST] == [o for _, o in table.GRID]
    assert table.DATASETS["avmnist"].probe_columns == ["image", "audio", "fused"]


def test_method_table_renders_the_same_rows_from_its_csv(tmp_path):
    table = _method_table()
    spec = table.DATASETS["shapes"]
    frame = pd.DataFrame(
        [
            {
                "method": "clip",
                "seed": s,
                "error": "",
                "image": 0.5 + s / 10,
                "text": 0.9,
                "audio": 0.4,
                "fused": 0.7,
                "R@1": 0.1,
                "s/epoch": 2.0,
            }
            for s in (0, 1, 2)
        ]
        + [{"method": "coca", "seed": 0, "error": "needs text | tokens"}]
    )
    frame.to_csv(tmp_path / "rows.csv", index=False)
    again = table.read_rows(tmp_path / "rows.csv")
    lines = table.table_lines(again, spec)
    assert lines == table.table_lines(frame.fillna({"error": ""}), spec)
    assert lines[2].startswith("| clip | 0.600 ± 0.100 | 0.900 ± 0.000")
    assert lines[3] == "| coca | not applicable: needs text \\| tokens |" + " |" * 5


def test_pad_matches_functional_pad_on_sequences():
    x = torch.randn(3, 2, 10)
    torch.testing.assert_close(pad_to_patches(x, 4), F.pad(x, (0, 2)))
