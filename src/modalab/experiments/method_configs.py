"""Structured configs (``method=<name>``) of the self-supervised method recipes.

Each dataclass holds the method's name and its hyperparameters, with the defaults of the
builders in :mod:`modalab.methods`. ``modality`` selects one modality (two augmented views of
it) or ``""`` (across every pair of modalities). The run's seed, an example batch and the
dataset's info are passed to the builders by the runner, not through the config.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["METHOD_CONFIGS"]


@dataclass
class SimCLRConfig:
    """``method=simclr``: NT-Xent within a modality (two views) or across modalities."""

    name: str = "simclr"
    modality: str = ""  # "" = across modalities; e.g. "image" = two augmented views of it
    temperature: float = 0.2
    proj_dim: int = 64
    proj_hidden: int = 128  # two-layer projection head (SimCLR)
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class SLIPConfig:
    """``method=slip``: CLIP across modalities + SimCLR within ``modality``."""

    name: str = "slip"
    modality: str = ""  # "" = the dataset's first modality
    temperature: float = 0.2  # SimCLR temperature
    clip_temperature: float = 0.07
    clip_weight: float = 1.0
    proj_dim: int = 64
    proj_hidden: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class MoCoConfig:
    """``method=moco``: momentum encoder; queue of negatives (v2) or predictor (v3)."""

    name: str = "moco"
    modality: str = ""
    version: str = "v2"  # v2 | v3
    queue_size: int = 1024  # keys per modality queue (v2)
    temperature: float = 0.2
    momentum: float = 0.99  # EMA momentum of the key encoder
    proj_dim: int = 64
    proj_hidden: int = 128
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class BYOLConfig:
    """``method=byol``: predictor + EMA target, no negatives."""

    name: str = "byol"
    modality: str = ""
    momentum: float = 0.99
    proj_dim: int = 64
    proj_hidden: int = 128
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class SimSiamConfig:
    """``method=simsiam``: predictor + stop-gradient, no EMA, no negatives."""

    name: str = "simsiam"
    modality: str = ""
    proj_dim: int = 64
    proj_hidden: int = 128
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class VICRegConfig:
    """``method=vicreg``: variance-invariance-covariance regularisation."""

    name: str = "vicreg"
    modality: str = ""
    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0
    proj_dim: int = 128
    proj_hidden: int = 256
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class BarlowConfig:
    """``method=barlow``: Barlow Twins redundancy reduction."""

    name: str = "barlow"
    modality: str = ""
    redundancy_weight: float = 5e-3
    proj_dim: int = 128
    proj_hidden: int = 256
    augment: bool = True
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class MaskedConfig:
    """``method=masked``: masked tokens / patches per modality + masked-modality prediction."""

    name: str = "masked"
    mask_prob: float = 0.3
    image_patch: int = 8  # patch side for [B, C, H, W] inputs
    sequence_patch: int = 64  # patch length for [B, C, T] inputs
    modality_weight: float = 1.0  # weight of masked-modality prediction
    predictor_hidden: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class FusionConfig:
    """``method=fusion``: cross-attention fusion with masked modelling + matching."""

    name: str = "fusion"
    width: int = 64
    depth: int = 2
    heads: int = 4
    mask_prob: float = 0.2
    match_modality: str = ""  # "" = the dataset's last modality is swapped for negatives
    match_weight: float = 1.0
    lr: float = 1e-3
    weight_decay: float = 1e-4


@dataclass
class CoCaConfig:
    """``method=coca``: CLIP + autoregressive captioning of ``caption_modality``."""

    name: str = "coca"
    caption_modality: str = "text"
    caption_weight: float = 1.0
    temperature: float = 0.07
    proj_dim: int = 64
    decoder_width: int = 64
    decoder_depth: int = 2
    lr: float = 2e-3
    weight_decay: float = 1e-4


#: ``method=`` option name → its structured config.
METHOD_CONFIGS: dict[str, type] = {
    "simclr": SimCLRConfig,
    "slip": SLIPConfig,
    "moco": MoCoConfig,
    "byol": BYOLConfig,
    "simsiam": SimSiamConfig,
    "vicreg": VICRegConfig,
    "barlow": BarlowConfig,
    "masked": MaskedConfig,
    "fusion": FusionConfig,
    "coca": CoCaConfig,
}
