"""``shapes``: an embedded, procedurally generated multimodal dataset with known latent factors.

Every sample draws four latent factors — ``shape`` (4 levels), ``colour`` (4), ``size`` (3) and
``position`` (4) — and renders them in three modalities:

* ``image``: a 3×S×S picture of a coloured shape of some size in some quadrant;
* ``text``: a tokenised caption from a small grammar of templates;
* ``audio``: a short waveform whose timbre, pitch, pulse rate and onset encode the factors;
* ``tabular`` (optional): a vector of one-hot factor codes plus Gaussian noise.

Which factors each modality *carries* is configuration. A modality that does not carry a factor
still renders it, but from an independent nuisance draw, so that the factor cannot be predicted
from that modality above chance. The downstream label is a configurable function of factors:
``identity`` of one factor, ``sum_mod`` (a generalised XOR: the sum of two factors modulo their
number of levels, which is independent of each factor alone), or ``joint`` (the Cartesian
product). Redundant, unique and synergistic information — in the sense of partial information
decomposition (Williams & Beer, 2010; Liang et al., "Quantifying & Modeling Multimodal
Interactions", NeurIPS 2023) — is thus set by configuration, and the ground truth is returned
with the data so that attributions can be validated.

Generation is vectorised (a few seconds for 10k samples) and deterministic by seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from modalab.data.registry import DATASETS
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits

__all__ = [
    "FACTORS",
    "VOCABULARY",
    "ShapesConfig",
    "ShapesTruth",
    "generate_shapes",
    "make_shapes",
    "render_audio",
    "render_image",
    "render_tabular",
    "render_text",
]

#: The latent factors and their numbers of levels.
FACTORS: dict[str, int] = {"shape": 4, "colour": 4, "size": 3, "position": 4}
MODALITIES = ("image", "text", "audio", "tabular")
DEFAULT_MODALITIES = ("image", "text", "audio")
LABEL_RULES = ("identity", "sum_mod", "joint")

_SHAPE_WORDS = ("circle", "square", "triangle", "cross")
_COLOUR_WORDS = ("red", "green", "blue", "yellow")
_SIZE_WORDS = ("small", "medium", "large")
_VPOS_WORDS = ("top", "top", "bottom", "bottom")
_HPOS_WORDS = ("left", "right", "left", "right")
_FILLER_WORDS = ("a", "the", "at", "is", "and", "in", ":", ",", "shape", "picture", "of")
#: Token vocabulary of the ``text`` modality; ids 0-3 are special tokens.
VOCABULARY: tuple[str, ...] = (
    "[PAD]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *_FILLER_WORDS,
    *_SHAPE_WORDS,
    *_COLOUR_WORDS,
    *_SIZE_WORDS,
    "top",
    "bottom",
    "left",
    "right",
)
_WORD_ID = {w: i for i, w in enumerate(VOCABULARY)}
PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 1, 2, 3

# Slot placeholders in caption templates (negative so they never clash with token ids).
_SLOTS = {"{shape}": -1, "{colour}": -2, "{size}": -3, "{vpos}": -4, "{hpos}": -5}
_TEMPLATES = (
    "a {size} {colour} {shape} at the {vpos} {hpos}",
    "the {shape} is {colour} and {size} , {vpos} {hpos}",
    "{vpos} {hpos} : a {colour} {shape} , {size}",
    "a picture of a {size} {shape} in {colour} at the {vpos} {hpos}",
)

_PALETTE = torch.tensor(
    [[0.90, 0.15, 0.15], [0.15, 0.80, 0.20], [0.20, 0.30, 0.95], [0.95, 0.85, 0.15]]
)
_RADII = (0.12, 0.18, 0.25)
_CENTRES = ((0.3, 0.3), (0.3, 0.7), (0.7, 0.3), (0.7, 0.7))  # (row, col) per position level
_PITCHES_HZ = (250.0, 330.0, 410.0, 530.0)  # no base is a harmonic of another
_TIMBRES = torch.tensor(
    [[1.0, 0.0, 0.0, 0.0], [1.0, 0.5, 0.33, 0.25], [1.0, 0.0, 0.33, 0.0], [1.0, 0.8, 0.6, 0.4]]
)
_PULSES = (1.0, 3.0, 6.0)
_ONSETS = (0.0, 0.15, 0.3, 0.45)
AUDIO_SAMPLE_RATE = 4000


@dataclass
class ShapesConfig:
    """Configuration of the ``shapes`` dataset.

    Attributes:
        n_samples: Total number of samples over all splits.
        modalities: The modalities to generate (a subset of ``image``, ``text``, ``audio``).
        carries: For each modality, the latent factors it carries; the others it renders from
            an independent nuisance draw. A generated modality absent from ``carries``
            carries no factor.
        label_factors: Factors the label depends on.
        label_rule: ``identity`` (one factor), ``sum_mod`` (sum of factors modulo the smallest
            number of levels — XOR for two binary factors) or ``joint`` (Cartesian product).
        noise: Per-modality nuisance noise: pixel noise std for ``image``, waveform noise std
            for ``audio``, feature noise std for ``tabular``, probability of replacing each
            token by a random word for ``text``.
        image_size: Side of the square images in pixels.
        text_length: Token sequence length (captions are padded).
        audio_length: Waveform length in samples (at 4 kHz).
        val_fraction: Fraction of samples in the validation split.
        test_fraction: Fraction of samples in the test split.
        seed: Seed of the generator.
        spurious_modality: Optional modality given a shortcut: in the train and validation
            splits, its rendering of ``spurious_factor`` equals ``label % levels`` with
            probability ``spurious_rate`` (else the nuisance draw); in the test split it stays
            independent of the label. Empty: no shortcut.
        spurious_factor: The factor that carries the shortcut (a factor the modality does not
            carry and the label does not depend on).
        spurious_rate: Probability of the shortcut in the train and validation splits.
    """

    n_samples: int = 6000
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    carries: dict[str, list[str]] = field(
        default_factory=lambda: {
            "image": ["shape", "colour", "size", "position"],
            "text": ["shape", "colour", "size", "position"],
            "audio": ["shape", "size"],
            "tabular": ["shape", "colour", "size", "position"],
        }
    )
    label_factors: list[str] = field(default_factory=lambda: ["shape"])
    label_rule: str = "identity"
    noise: dict[str, float] = field(
        default_factory=lambda: {"image": 0.1, "text": 0.05, "audio": 0.3, "tabular": 0.5}
    )
    image_size: int = 32
    text_length: int = 16
    audio_length: int = 1024
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    seed: int = 0
    spurious_modality: str = ""
    spurious_factor: str = "size"
    spurious_rate: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the bad field if the configuration is inconsistent."""
        if self.n_samples < 10:
            raise ValueError(f"data.n_samples must be at least 10, got {self.n_samples}.")
        if not self.modalities:
            raise ValueError("data.modalities must name at least one modality.")
        for modality in self.modalities:
            if modality not in MODALITIES:
                raise ValueError(
                    f"data.modalities has unknown modality {modality!r}; valid: {list(MODALITIES)}."
                )
        for modality, factors in self.carries.items():
            if modality not in MODALITIES:
                raise ValueError(
                    f"data.carries has unknown modality {modality!r}; valid: {list(MODALITIES)}."
                )
            for f in factors:
                if f not in FACTORS:
                    raise ValueError(
                        f"data.carries.{modality} has unknown factor {f!r}; valid: {list(FACTORS)}."
                    )
        for modality in self.noise:
            if modality not in MODALITIES:
                raise ValueError(
                    f"data.noise has unknown modality {modality!r}; valid: {list(MODALITIES)}."
                )
        for modality, level in self.noise.items():
            if level < 0 or (modality == "text" and level > 1):
                raise ValueError(
                    f"data.noise.{modality}={level} is out of range "
                    f"({'a probability in [0, 1]' if modality == 'text' else 'a std >= 0'})."
                )
        if self.label_rule not in LABEL_RULES:
            raise ValueError(
                f"data.label_rule={self.label_rule!r} is unknown; valid: {list(LABEL_RULES)}."
            )
        if not self.label_factors or any(f not in FACTORS for f in self.label_factors):
            raise ValueError(
                f"data.label_factors={list(self.label_factors)} must be a non-empty list of "
                f"factors from {list(FACTORS)}."
            )
        if self.label_rule == "identity" and len(self.label_factors) != 1:
            raise ValueError("data.label_rule=identity needs exactly one factor in label_factors.")
        if self.image_size < 16:
            raise ValueError(f"data.image_size must be at least 16, got {self.image_size}.")
        if self.text_length < 16:
            raise ValueError(
                f"data.text_length must be at least 16 (the longest caption), got "
                f"{self.text_length}."
            )
        if self.audio_length < 128:
            raise ValueError(f"data.audio_length must be at least 128, got {self.audio_length}.")
        fractions = (self.val_fraction, self.test_fraction)
        if any(not 0 < f < 1 for f in fractions) or sum(fractions) >= 1:
            raise ValueError(
                f"data.val_fraction={self.val_fraction} and data.test_fraction="
                f"{self.test_fraction} must be in (0, 1) and sum to less than 1."
            )
        if self.spurious_modality:
            if self.spurious_modality not in self.carries:
                raise ValueError(
                    f"data.spurious_modality={self.spurious_modality!r} is not generated; "
                    f"choose one of data.carries: {list(self.carries)}."
                )
            if self.spurious_factor not in FACTORS or self.spurious_factor in (
                set(self.carries[self.spurious_modality]) | set(self.label_factors)
            ):
                raise ValueError(
                    f"data.spurious_factor={self.spurious_factor!r} must be a factor of "
                    f"{list(FACTORS)} that {self.spurious_modality!r} does not carry and the "
                    "label does not depend on."
                )
            if not 0 <= self.spurious_rate <= 1:
                raise ValueError(
                    f"data.spurious_rate={self.spurious_rate} must be a probability in [0, 1]."
                )


@dataclass
class ShapesTruth:
    """The ground truth of a generated ``shapes`` dataset.

    Attributes:
        factors: Factor name → number of levels.
        carries: Modality → factors it carries.
        label_factors: Factors the label depends on.
        label_rule: How the label is computed from them.
        num_classes: Number of label classes.
        latent: ``[N, K]`` latent factor levels (columns in the order of ``factors``).
        rendered: Modality → ``[N, K]`` factor levels as that modality renders them (equal to
            ``latent`` in the columns of factors it carries, nuisance elsewhere).
    """

    factors: dict[str, int]
    carries: dict[str, list[str]]
    label_factors: list[str]
    label_rule: str
    num_classes: int
    latent: Tensor
    rendered: dict[str, Tensor]

    def factor(self, name: str, modality: str | None = None) -> Tensor:
        """Levels ``[N]`` of a factor, latent or as rendered by ``modality``."""
        column = list(self.factors).index(name)
        source = self.latent if modality is None else self.rendered[modality]
        return source[:, column]

    def informative_modalities(self) -> list[str]:
        """Modalities that carry at least one of the label's factors."""
        return [m for m, fs in self.carries.items() if set(fs) & set(self.label_factors)]


def _label_from_factors(latent: Tensor, factors: Sequence[str], rule: str) -> tuple[Tensor, int]:
    columns = [list(FACTORS).index(f) for f in factors]
    values = latent[:, columns]
    levels = [FACTORS[f] for f in factors]
    if rule == "identity":
        return values[:, 0].clone(), levels[0]
    if rule == "sum_mod":
        modulus = min(levels)
        return values.sum(dim=1) % modulus, modulus
    label = torch.zeros(latent.shape[0], dtype=torch.long)
    for col, n in zip(range(values.shape[1]), levels):
        label = label * n + values[:, col]
    return label, math.prod(levels)


def render_image(rendered: Tensor, size: int, noise: float, generator: torch.Generator) -> Tensor:
    """Render images from factor levels.

    Args:
        rendered: ``[N, 4]`` levels of (shape, colour, size, position).
        size: Image side in pixels.
        noise: Std of additive Gaussian pixel noise.
        generator: Random generator for jitter and noise.

    Returns:
        Float images ``[N, 3, size, size]`` with values around [0, 1].
    """
    n = rendered.shape[0]
    shape, colour, size_level, position = rendered.unbind(dim=1)
    centres = torch.tensor(_CENTRES)[position]
    centres = centres + (torch.rand(n, 2, generator=generator) - 0.5) * 0.08
    radius = torch.tensor(_RADII)[size_level] * (
        1 + (torch.rand(n, generator=generator) - 0.5) * 0.1
    )
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    dy = coords.view(1, size, 1) - centres[:, 0].view(n, 1, 1)
    dx = coords.view(1, 1, size) - centres[:, 1].view(n, 1, 1)
    r = radius.view(n, 1, 1)
    masks = torch.stack(
        [
            dx**2 + dy**2 <= r**2,
            torch.maximum(dx.abs(), dy.abs()) <= 0.85 * r,
            (dy >= -r) & (dy <= 0.8 * r) & (dx.abs() <= (dy + r) * 0.55),
            ((dx.abs() <= 0.3 * r) & (dy.abs() <= r)) | ((dy.abs() <= 0.3 * r) & (dx.abs() <= r)),
        ]
    )  # [4, N, S, S]
    mask = masks[shape, torch.arange(n)].float()  # [N, S, S]
    rgb = _PALETTE[colour] * (1 + (torch.rand(n, 1, generator=generator) - 0.5) * 0.2)
    background = 0.1 * torch.rand(n, 1, 1, 1, generator=generator)
    images = background + mask.unsqueeze(1) * rgb.view(n, 3, 1, 1)
    if noise > 0:
        images = images + noise * torch.randn(images.shape, generator=generator)
    return images


def _template_tokens(length: int) -> Tensor:
    rows = []
    for template in _TEMPLATES:
        ids = [CLS_ID] + [_SLOTS.get(w, _WORD_ID.get(w, -99)) for w in template.split()] + [SEP_ID]
        assert -99 not in ids, template
        rows.append(ids + [PAD_ID] * (length - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def render_text(rendered: Tensor, length: int, noise: float, generator: torch.Generator) -> Tensor:
    """Render tokenised captions from factor levels.

    Args:
        rendered: ``[N, 4]`` levels of (shape, colour, size, position).
        length: Token sequence length.
        noise: Probability of replacing each word token with a random word.
        generator: Random generator for the template choice and word noise.

    Returns:
        Token ids ``[N, length]`` (long), ``[CLS] ... [SEP]`` then ``[PAD]``.
    """
    n = rendered.shape[0]
    templates = _template_tokens(length)
    choice = torch.randint(len(_TEMPLATES), (n,), generator=generator)
    tokens = templates[choice].clone()
    shape, colour, size_level, position = rendered.unbind(dim=1)
    fill = {
        -1: torch.tensor([_WORD_ID[w] for w in _SHAPE_WORDS])[shape],
        -2: torch.tensor([_WORD_ID[w] for w in _COLOUR_WORDS])[colour],
        -3: torch.tensor([_WORD_ID[w] for w in _SIZE_WORDS])[size_level],
        -4: torch.tensor([_WORD_ID[w] for w in _VPOS_WORDS])[position],
        -5: torch.tensor([_WORD_ID[w] for w in _HPOS_WORDS])[position],
    }
    for slot, words in fill.items():
        tokens = torch.where(tokens == slot, words.view(n, 1), tokens)
    if noise > 0:
        is_word = tokens > MASK_ID
        flip = (torch.rand(tokens.shape, generator=generator) < noise) & is_word
        random_words = torch.randint(
            MASK_ID + 1, len(VOCABULARY), tokens.shape, generator=generator
        )
        tokens = torch.where(flip, random_words, tokens)
    return tokens


def render_audio(rendered: Tensor, length: int, noise: float, generator: torch.Generator) -> Tensor:
    """Render waveforms from factor levels.

    Timbre (harmonic profile) encodes ``shape``, pitch encodes ``colour``, the amplitude pulse
    rate encodes ``size`` and the onset time encodes ``position``.

    Args:
        rendered: ``[N, 4]`` levels of (shape, colour, size, position).
        length: Number of samples at 4 kHz.
        noise: Std of additive Gaussian noise (the clean tone has unit RMS at most).
        generator: Random generator for phase/pitch jitter and noise.

    Returns:
        Waveforms ``[N, 1, length]``.
    """
    n = rendered.shape[0]
    shape, colour, size_level, position = rendered.unbind(dim=1)
    t = torch.arange(length, dtype=torch.float32) / AUDIO_SAMPLE_RATE
    duration = length / AUDIO_SAMPLE_RATE
    pitch = torch.tensor(_PITCHES_HZ)[colour] * (
        1 + (torch.rand(n, generator=generator) - 0.5) * 0.04
    )
    phase = torch.rand(n, 1, generator=generator) * 2 * math.pi
    timbre = _TIMBRES[shape]  # [N, H]
    harmonics = torch.arange(1, timbre.shape[1] + 1, dtype=torch.float32)
    wave = torch.zeros(n, length)
    for h in range(timbre.shape[1]):
        wave += timbre[:, h : h + 1] * torch.sin(
            2 * math.pi * pitch.view(n, 1) * harmonics[h] * t.view(1, -1) + phase * harmonics[h]
        )
    wave = wave / timbre.norm(dim=1, keepdim=True)
    pulses = torch.tensor(_PULSES)[size_level].view(n, 1)
    envelope = 0.5 * (1 - torch.cos(2 * math.pi * pulses * t.view(1, -1) / duration))
    onset = torch.tensor(_ONSETS)[position].view(n, 1) * duration
    envelope = envelope * (t.view(1, -1) >= onset).float()
    wave = wave * envelope
    if noise > 0:
        wave = wave + noise * torch.randn(wave.shape, generator=generator)
    return wave.unsqueeze(1)


def render_tabular(
    rendered: Tensor, length: int, noise: float, generator: torch.Generator
) -> Tensor:
    """Render feature vectors: the one-hot codes of the four factors plus Gaussian noise.

    Args:
        rendered: ``[N, 4]`` levels of (shape, colour, size, position).
        length: Unused (the vector has ``sum(levels)`` = 15 features).
        noise: Std of the additive Gaussian noise.
        generator: Random generator for the noise.

    Returns:
        Float vectors ``[N, 15]``.
    """
    codes = [
        torch.nn.functional.one_hot(rendered[:, k], n).float()
        for k, n in enumerate(FACTORS.values())
    ]
    x = torch.cat(codes, dim=1)
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator)
    return x


_RENDERERS = {
    "image": render_image,
    "text": render_text,
    "audio": render_audio,
    "tabular": render_tabular,
}


def _render_size(config: ShapesConfig, modality: str) -> int:
    return {
        "image": config.image_size,
        "text": config.text_length,
        "audio": config.audio_length,
        "tabular": 0,
    }[modality]


def generate_shapes(config: ShapesConfig) -> tuple[dict[str, Tensor], Tensor, ShapesTruth]:
    """Generate all samples of a ``shapes`` dataset (before splitting).

    Args:
        config: The dataset configuration.

    Returns:
        ``(inputs, label, truth)``: one tensor per modality, labels ``[N]`` and the truth.

    Example:
        >>> cfg = ShapesConfig(
        ...     n_samples=100, modalities=["image", "text"],
        ...     carries={"image": ["shape"], "text": ["colour"]},
        ... )
        >>> inputs, label, truth = generate_shapes(cfg)
        >>> sorted(inputs), inputs["image"].shape, truth.num_classes
        (['image', 'text'], torch.Size([100, 3, 32, 32]), 4)
    """
    config.validate()
    generator = torch.Generator().manual_seed(config.seed)
    n = config.n_samples
    names = list(FACTORS)
    latent = torch.stack(
        [torch.randint(FACTORS[f], (n,), generator=generator) for f in names], dim=1
    )
    label, num_classes = _label_from_factors(latent, config.label_factors, config.label_rule)
    inputs: dict[str, Tensor] = {}
    rendered: dict[str, Tensor] = {}
    for modality in MODALITIES:
        if modality not in config.modalities:
            continue
        carried = set(config.carries.get(modality, []))
        columns = []
        for k, f in enumerate(names):
            nuisance = torch.randint(FACTORS[f], (n,), generator=generator)
            if modality == config.spurious_modality and f == config.spurious_factor:
                nuisance = _add_shortcut(nuisance, label, config)
            columns.append(latent[:, k] if f in carried else nuisance)
        rendered[modality] = torch.stack(columns, dim=1)
        noise = float(config.noise.get(modality, 0.0))
        inputs[modality] = _RENDERERS[modality](
            rendered[modality], _render_size(config, modality), noise, generator
        )
    truth = ShapesTruth(
        factors=dict(FACTORS),
        carries={m: list(config.carries.get(m, [])) for m in config.modalities},
        label_factors=list(config.label_factors),
        label_rule=config.label_rule,
        num_classes=num_classes,
        latent=latent,
        rendered=rendered,
    )
    return inputs, label, truth


def _split_rows(config: ShapesConfig) -> dict[str, Tensor]:
    """Sample rows of the test, validation and train splits."""
    n = config.n_samples
    n_test = max(1, round(n * config.test_fraction))
    n_val = max(1, round(n * config.val_fraction))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed + 1))
    return {
        "test": order[:n_test],
        "val": order[n_test : n_test + n_val],
        "train": order[n_test + n_val :],
    }


def _add_shortcut(nuisance: Tensor, label: Tensor, config: ShapesConfig) -> Tensor:
    """Set the nuisance to ``label % levels`` at rate ``spurious_rate``, outside the test split.

    Drawn from its own generator so that the rest of the data is the same with or without it.
    """
    if config.spurious_rate == 0:
        return nuisance
    generator = torch.Generator().manual_seed(config.seed + 2)
    hit = torch.rand(nuisance.shape[0], generator=generator) < config.spurious_rate
    hit[_split_rows(config)["test"]] = False
    return torch.where(hit, label % FACTORS[config.spurious_factor], nuisance)


def _slice_truth(truth: ShapesTruth, rows: Tensor) -> ShapesTruth:
    return ShapesTruth(
        factors=truth.factors,
        carries=truth.carries,
        label_factors=truth.label_factors,
        label_rule=truth.label_rule,
        num_classes=truth.num_classes,
        latent=truth.latent[rows],
        rendered={m: r[rows] for m, r in truth.rendered.items()},
    )


@DATASETS.register("shapes", config=ShapesConfig)
def make_shapes(**kwargs: Any) -> Splits:
    """Embedded synthetic image/text/audio data with known latent factors (no download).

    Args:
        **kwargs: Fields of :class:`ShapesConfig`.

    Returns:
        Train/val/test splits; ``info.truth`` maps each split name to its
        :class:`ShapesTruth`.

    Example:
        >>> splits = make_shapes(n_samples=200, seed=1)
        >>> len(splits.train) + len(splits.val) + len(splits.test), splits.num_classes
        (200, 4)
    """
    config = ShapesConfig(**kwargs)
    inputs, label, truth = generate_shapes(config)
    parts = _split_rows(config)
    datasets = {}
    for split, rows in parts.items():
        datasets[split] = MultimodalTensorDataset(
            inputs={m: x[rows] for m, x in inputs.items()},
            label=label[rows],
            index=rows,
            num_classes=truth.num_classes,
        )
    return Splits(
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        num_classes=truth.num_classes,
        info=DataInfo(
            name="shapes",
            truth={split: _slice_truth(truth, rows) for split, rows in parts.items()},
            vocab_size=len(VOCABULARY),
            pad_id=PAD_ID,
            mask_id=MASK_ID,
            special_ids=[PAD_ID, CLS_ID, SEP_ID, MASK_ID],
            sample_rates={"audio": AUDIO_SAMPLE_RATE},
            class_names=_class_names(config),
        ),
    )


def _class_names(config: ShapesConfig) -> list[str]:
    """Names of the classes when the label is one named factor (``identity`` rule), else ids."""
    words = {"shape": _SHAPE_WORDS, "colour": _COLOUR_WORDS, "size": _SIZE_WORDS}
    factors = list(config.label_factors)
    if config.label_rule == "identity" and len(factors) == 1 and factors[0] in words:
        return list(words[factors[0]])
    return []
