"""Method recipes: absent modalities ignored, EMA, queues, fusion, decoder, augmentations."""

from __future__ import annotations

import pytest
import torch

from modalab.data.augment import ModalityAugment, _MonaiPerSample, mask_tokens
from modalab.data.shapes import make_shapes
from modalab.experiments.build import build_encoders, build_method
from modalab.experiments.config import compose_config
from modalab.methods.masked import patchify, unpatchify
from modalab.methods.registry import LABEL_FREE_METHODS
from modalab.models.fusion import CaptionDecoder, CrossAttentionFusion

SPLITS = make_shapes(n_samples=120, seed=0)


def _build(name: str, **overrides: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = compose_config([f"method={name}", "model.embed_dim=32"])
    method_cfg = {**dict(cfg.method), **overrides}
    encoder = build_encoders({"embed_dim": 32, "encoders": {}}, SPLITS)
    return build_method(method_cfg, encoder, SPLITS, 32, seed=0)


def _reseed(method: torch.nn.Module) -> None:
    """Reset every random state a method owns (masking generators, augmentations)."""
    for module in method.modules():
        if isinstance(module, _MonaiPerSample):
            module.transform.set_random_state(seed=0)
        generator = getattr(module, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(0)


def _batch_with_absent_rows():
    batch = SPLITS.train.__getitems__(list(range(16)))
    batch.inputs = {m: x.double() if x.is_floating_point() else x for m, x in batch.inputs.items()}
    batch.present["audio"][[1, 4, 9]] = False
    batch.present["text"][[2, 9, 12]] = False
    return batch


def _scramble_absent(batch):
    scrambled = batch.select(torch.arange(batch.batch_size))
    g = torch.Generator().manual_seed(5)
    for m, x in scrambled.inputs.items():
        absent = ~scrambled.present[m]
        if x.is_floating_point():
            x[absent] = 7.0 * torch.randn(x[absent].shape, generator=g, dtype=x.dtype)
        else:
            x[absent] = torch.randint(4, 30, x[absent].shape, generator=g)
    return scrambled


# Cross-modal recipes without augmentation: augmentations are tested on their own below, and
# float32 steps inside them would blur the float64 equality checked here.
METHODS_UNDER_TEST = [
    ("simclr", {"augment": False}),
    ("simclr", {"modality": "image"}),
    ("slip", {}),
    ("moco", {"augment": False}),
    ("moco", {"version": "v3", "augment": False}),
    ("byol", {"augment": False}),
    ("simsiam", {"augment": False}),
    ("vicreg", {"augment": False}),
    ("barlow", {"augment": False}),
    ("masked", {}),
    ("fusion", {}),
    ("coca", {}),
]


@pytest.mark.parametrize(("name", "overrides"), METHODS_UNDER_TEST)
def test_absent_rows_do_not_change_the_loss(name: str, overrides: dict) -> None:
    method = _build(name, **overrides)
    method.eval()  # batch norm on running statistics: rows cannot influence each other
    method.double()  # float64, so that equality can be checked tightly
    batch = _batch_with_absent_rows()
    _reseed(method)
    with torch.no_grad():
        reference = method.compute_loss(batch).loss
    _reseed(method)
    with torch.no_grad():
        scrambled = method.compute_loss(_scramble_absent(batch)).loss
    assert torch.isfinite(reference)
    torch.testing.assert_close(scrambled, reference, rtol=1e-6, atol=1e-9)
    # And the inputs of present rows do matter (the check above can fail).
    changed = batch.select(torch.arange(batch.batch_size))
    for m in ("image", "audio"):
        changed.inputs[m][:6] = 3.0 * torch.randn(changed.inputs[m][:6].shape, dtype=torch.float64)
    _reseed(method)
    with torch.no_grad():
        difference = abs(method.compute_loss(changed).loss.item() - reference.item())
    assert difference > 1e-5 * abs(reference.item())


def test_ema_target_follows_online_network() -> None:
    method = _build("byol", momentum=0.9)
    online = next(method.encoder.parameters())
    target = next(method.target.parameters())
    with torch.no_grad():
        online.add_(1.0)
    before = target.detach().clone()
    method.on_train_batch_end(None, None, 0)
    torch.testing.assert_close(target, 0.9 * before + 0.1 * online.detach())


def test_moco_v2_training_step_fills_the_queue_with_momentum_keys() -> None:
    method = _build("moco", queue_size=64, augment=False)
    batch = SPLITS.train.__getitems__(list(range(8)))
    before = method.objective.queue("image")
    method.compute_loss(batch, update_queue=True)
    after = method.objective.queue("image")
    with torch.no_grad():
        keys = method.target.projections["image"](
            method.target.encoders["image"](batch.inputs["image"])
        )
    torch.testing.assert_close(after[:8], torch.nn.functional.normalize(keys, dim=1))
    torch.testing.assert_close(after[8:], before[8:])


def test_unknown_modality_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not a modality of the data"):
        _build("simclr", modality="video")


def test_fusion_absent_modality_enters_as_learned_token() -> None:
    torch.manual_seed(0)
    fusion = CrossAttentionFusion({"a": 4, "b": 3}, {"a": 5, "b": 2}, width=8, depth=2)
    fusion.eval()
    tokens = {"a": torch.randn(3, 5, 4), "b": torch.randn(3, 2, 3)}
    keep = {k: torch.ones(v.shape[:2], dtype=torch.bool) for k, v in tokens.items()}
    present = {"a": torch.ones(3, dtype=torch.bool), "b": torch.tensor([True, False, True])}
    out = fusion(tokens, keep, present)
    other = dict(tokens)
    other["b"] = tokens["b"].clone()
    other["b"][1] = 100.0
    out2 = fusion(other, keep, present)
    torch.testing.assert_close(out.cls["a"][1], out2.cls["a"][1])
    # The learned absent token matters: changing it changes the present stream's output.
    with torch.no_grad():
        fusion.absent_token["b"].add_(1.0)
    out3 = fusion(tokens, keep, present)
    assert not torch.allclose(out3.cls["a"][1], out.cls["a"][1])
    torch.testing.assert_close(out3.cls["a"][0], out.cls["a"][0])
    # The fused vector averages the present modalities' summary tokens only.
    torch.testing.assert_close(out.fused[1], out.cls["a"][1])


def test_caption_decoder_is_causal() -> None:
    torch.manual_seed(0)
    decoder = CaptionDecoder(vocab_size=12, max_length=6, width=8, depth=1)
    memory, keep = torch.randn(2, 3, 8), torch.ones(2, 3, dtype=torch.bool)
    tokens = torch.randint(4, 12, (2, 6))
    later = tokens.clone()
    later[:, 4:] = 5
    a, b = decoder(tokens, memory, keep), decoder(later, memory, keep)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_greedy_generation_follows_the_decoder_argmax() -> None:
    torch.manual_seed(1)
    decoder = CaptionDecoder(vocab_size=12, max_length=6, width=8, depth=1)
    decoder.eval()
    memory, keep = torch.randn(3, 4, 8), torch.ones(3, 4, dtype=torch.bool)
    generated = decoder.generate(memory, keep, start_id=1, length=6)
    assert generated[:, 0].tolist() == [1, 1, 1]
    # Teacher-forcing the generated caption reproduces each greedy choice.
    logits = decoder(generated, memory, keep)
    assert torch.equal(logits[:, :-1].argmax(-1), generated[:, 1:])


def test_patchify_layout_and_round_trip() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    patches = patchify(x, 2)
    assert patches[0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # top-left 2×2 patch
    torch.testing.assert_close(unpatchify(patches, x.shape, 2), x)
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.zeros(1, 1, 5, 4), 2)


def test_augmentations_are_seeded_and_leave_the_global_rng_alone() -> None:
    batch = SPLITS.train.__getitems__(list(range(8)))
    state = torch.get_rng_state()
    first = ModalityAugment.default(batch.inputs, seed=3)(batch.inputs)
    assert torch.equal(torch.get_rng_state(), state)
    second = ModalityAugment.default(batch.inputs, seed=3)(batch.inputs)
    other = ModalityAugment.default(batch.inputs, seed=4)(batch.inputs)
    for m in batch.inputs:
        assert first[m].shape == batch.inputs[m].shape
        assert torch.equal(first[m], second[m])
    assert not torch.equal(first["image"], other["image"])


def test_mask_tokens_never_masks_special_or_padding() -> None:
    tokens = torch.tensor([[1, 7, 8, 9, 2, 0, 0]] * 50)
    masked, where = mask_tokens(tokens, 0.5, 3, torch.Generator().manual_seed(0))
    assert not where[:, [0, 4, 5, 6]].any()
    assert torch.equal(masked[where], torch.full((int(where.sum()),), 3))
    assert 0.35 < where[:, 1:4].float().mean().item() < 0.65


@pytest.mark.slow  # 12 builds; the fast tier is at its budget
@pytest.mark.parametrize("name", sorted(LABEL_FREE_METHODS))
def test_label_free_methods_train_on_no_label(name: str) -> None:
    """Every method that shares its training across label scenarios (LABEL_FREE_METHODS):
    its training step's loss is the same with other labels and with none observed."""
    method = _build(name)
    batch = SPLITS.train.__getitems__(list(range(16)))
    other = batch.select(torch.arange(batch.batch_size))
    other.label = (batch.label + 1) % SPLITS.num_classes
    other.clean_label = other.label
    other.label_observed = torch.zeros_like(batch.label_observed)
    losses = []
    for candidate in (batch, other):
        torch.manual_seed(0)
        _reseed(method)
        with torch.no_grad():
            losses.append(method.step_loss(candidate, "val").loss)
    assert torch.isfinite(losses[0])
    torch.testing.assert_close(losses[1], losses[0])
    # Not every method: supervised training reads the labels (the check can fail).
    supervised = _build("supervised")
    with torch.no_grad():
        a, b = (supervised.step_loss(c, "val").loss for c in (batch, other))
    assert not torch.isclose(a, b)
