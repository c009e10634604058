"""Per-modality data augmentations for two-view self-supervised learning.

Images (``[B, C, H, W]`` floats) are augmented as a batch with :mod:`kornia.augmentation`
(random resized crop, brightness/contrast jitter, Gaussian noise). Waveforms and other
sequences (``[B, C, T]`` floats) go through MONAI dictionary transforms keyed by modality
(Gaussian noise, random gain, coarse time dropout). Token sequences (``[B, L]`` integers) get
BERT-style random masking. Every augmenter owns its random state: kornia draws happen inside
:func:`torch.random.fork_rng` seeded from the augmenter's own generator, and MONAI transforms
get :meth:`~monai.transforms.Randomizable.set_random_state`, so the global RNG is neither
read nor advanced.

The augmentations are label-preserving for the ``shapes`` factors only where the factor is
not what they change: colour and position are left alone (no hue jitter, no flips).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from monai.transforms import Compose, RandCoarseDropoutd, RandGaussianNoised, RandScaleIntensityd
from monai.utils import convert_to_tensor
from torch import Tensor, nn

__all__ = ["ModalityAugment", "TokenMasking", "default_augmentation", "mask_tokens"]


def mask_tokens(
    tokens: Tensor,
    mask_prob: float,
    mask_id: int,
    generator: torch.Generator,
    pad_id: int = 0,
    special_ids: tuple[int, ...] = (1, 2),
) -> tuple[Tensor, Tensor]:
    """Replace a random fraction of the ordinary tokens by ``mask_id`` (BERT's masking).

    Padding and special tokens (``[CLS]``, ``[SEP]``) are never masked.

    Args:
        tokens: ``[B, L]`` token ids.
        mask_prob: Probability that an ordinary token is masked.
        mask_id: Id of ``[MASK]``.
        generator: The random state (CPU generator).
        pad_id: Padding id.
        special_ids: Other ids never masked.

    Returns:
        The masked tokens ``[B, L]`` and the bool mask ``[B, L]`` of masked positions.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> masked, where = mask_tokens(torch.tensor([[1, 5, 6, 2, 0]]), 1.0, 3, g)
        >>> masked.tolist(), where.tolist()
        ([[1, 3, 3, 2, 0]], [[False, True, True, False, False]])
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}.")
    eligible = tokens != pad_id
    for special in special_ids:
        eligible &= tokens != special
    draw = torch.rand(tokens.shape, generator=generator).to(tokens.device)
    where = eligible & (draw < mask_prob)
    return tokens.masked_fill(where, mask_id), where


class TokenMasking(nn.Module):
    """A token-sequence augmentation: random ``[MASK]`` replacement with its own generator.

    Example:
        >>> aug = TokenMasking(mask_prob=1.0, mask_id=3, seed=0)
        >>> aug(torch.tensor([[1, 5, 2, 0]])).tolist()
        [[1, 3, 2, 0]]
    """

    def __init__(self, mask_prob: float = 0.15, mask_id: int = 3, pad_id: int = 0, seed: int = 0):
        super().__init__()
        self.mask_prob, self.mask_id, self.pad_id = mask_prob, mask_id, pad_id
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, tokens: Tensor) -> Tensor:
        """Masked copy of ``tokens`` ``[B, L]``."""
        return mask_tokens(tokens, self.mask_prob, self.mask_id, self.generator, self.pad_id)[0]


class _KorniaBatch(nn.Module):
    """A kornia augmentation pipeline run under a forked global RNG seeded from our own."""

    def __init__(self, pipeline: nn.Module, seed: int) -> None:
        super().__init__()
        self.pipeline = pipeline
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: Tensor) -> Tensor:
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        devices = [x.device] if x.is_cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out: Tensor = self.pipeline(x)
        return out


class _MonaiPerSample(nn.Module):
    """MONAI dictionary transforms applied sample by sample to ``{key: [C, ...]}``."""

    def __init__(self, transform: Compose, key: str, seed: int) -> None:
        super().__init__()
        self.transform = transform.set_random_state(seed=seed)
        self.key = key

    def forward(self, x: Tensor) -> Tensor:
        rows = [self.transform({self.key: row})[self.key] for row in x]
        return torch.stack([convert_to_tensor(r, track_meta=False) for r in rows]).to(x)


def default_augmentation(name: str, example: Tensor, seed: int = 0) -> nn.Module:
    """The default augmentation of a modality, chosen from an example batch's type and rank.

    Args:
        name: Modality name (the MONAI dictionary key).
        example: ``[B, ...]`` example batch.
        seed: Seed of the augmentation's own random state.

    Returns:
        A module mapping a batch to an augmented batch of the same shape.

    Raises:
        ValueError: For inputs with no default augmentation (e.g. float vectors).
    """
    if not example.is_floating_point() and example.dim() == 2:
        return TokenMasking(mask_prob=0.15, seed=seed)
    if example.dim() == 4:
        import kornia.augmentation as K  # here: importing kornia costs ~1.5 s at start-up

        channels, height, width = example.shape[1:]
        saturation = 0.2 if channels == 3 else 0.0
        pipeline = K.AugmentationSequential(
            K.RandomResizedCrop((int(height), int(width)), scale=(0.5, 1.0)),
            K.ColorJitter(0.3, 0.3, saturation, 0.0, p=0.8),
            K.RandomGaussianNoise(std=0.05, p=0.5),
        )
        return _KorniaBatch(pipeline, seed)
    if example.dim() == 3:
        length = int(example.shape[-1])
        transform = Compose(
            [
                RandGaussianNoised(keys=[name], prob=0.8, std=0.1),
                RandScaleIntensityd(keys=[name], factors=0.3, prob=0.8),
                RandCoarseDropoutd(
                    keys=[name], holes=2, spatial_size=max(1, length // 16), prob=0.5
                ),
            ]
        )
        return _MonaiPerSample(transform, name, seed)
    raise ValueError(
        f"No default augmentation for modality {name!r} with inputs of shape "
        f"{tuple(example.shape)} and dtype {example.dtype}; pass one explicitly."
    )


class ModalityAugment(nn.Module):
    """Augmentations keyed by modality; modalities without one pass through unchanged.

    Args:
        transforms: Modality → module mapping a batch ``[B, ...]`` to an augmented batch.

    Example:
        >>> aug = ModalityAugment.default({"text": torch.tensor([[1, 5, 2]])}, seed=0)
        >>> sorted(aug.transforms)
        ['text']
    """

    def __init__(self, transforms: Mapping[str, nn.Module]) -> None:
        super().__init__()
        self.transforms = nn.ModuleDict(dict(transforms))

    @classmethod
    def default(cls, examples: Mapping[str, Tensor], seed: int = 0) -> ModalityAugment:
        """Default augmentations for every modality of ``examples`` (one seed each)."""
        return cls(
            {
                name: default_augmentation(name, x, seed=seed + 1009 * i)
                for i, (name, x) in enumerate(examples.items())
            }
        )

    def forward(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Augmented copy of ``{modality: [B, ...]}``."""
        return {
            name: self.transforms[name](x) if name in self.transforms else x
            for name, x in inputs.items()
        }
