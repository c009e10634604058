"""Structured configs of the repair methods (``method=distill``, ``supervised_robust``, ...).

Each dataclass lists the plain arguments of its method builder; ``seed`` follows the run's
``seed`` by interpolation so that the random state of a training trick changes with the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import II

__all__ = [
    "REPAIR_METHOD_CONFIGS",
    "ClipRinceMethodConfig",
    "DistillMethodConfig",
    "GradBlendMethodConfig",
    "OgmGeMethodConfig",
    "SupervisedRobustMethodConfig",
]


@dataclass
class DistillMethodConfig:
    """``method=distill``: cross-modal distillation, rich-modality teacher → poor student."""

    name: str = "distill"
    teacher_modality: str = "image"  # the rich modality; "text|image": first the data has
    student_modality: str = "audio"  # the poor modality, evaluated alone; "": the other
    teacher_source: str = "train"  # train (in-run supervised phase) | encoder | run
    teacher_run: str = ""  # run directory of a finished run (teacher_source=run)
    teacher_dim: int = 0  # teacher embedding size; 0: model.embed_dim
    teacher_epochs: int = 3  # supervised teacher epochs before distillation (source=train)
    objective: str = "cosine"  # cosine | mse | contrastive (LiT) | kd (soft labels)
    temperature: float = 4.0  # of kd; of contrastive (use ~0.1 there)
    lr: float = 2e-3
    weight_decay: float = 1e-4


@dataclass
class SupervisedRobustMethodConfig:
    """``method=supervised_robust``: late fusion + modality dropout, fill, robust label loss."""

    name: str = "supervised_robust"
    fill: str = "zero"  # zero | absent (learned absent embedding) | impute
    dropout_rate: float = 0.0  # modality dropout probability during training
    imputation_weight: float = 1.0  # weight of the imputation loss (fill=impute)
    label_loss: str = "ce"  # ce | gce | sce
    gce_q: float = 0.7
    sce_alpha: float = 0.1
    sce_beta: float = 1.0
    hidden: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = II("seed")


@dataclass
class OgmGeMethodConfig:
    """``method=ogm_ge``: linear late fusion with on-the-fly gradient modulation."""

    name: str = "ogm_ge"
    modulation: str = "ogm_ge"  # none | ogm | ogm_ge
    alpha: float = 0.5  # modulation strength
    modulation_start: int = 0  # first modulated epoch
    modulation_end: int = -1  # last modulated epoch (exclusive); -1: to the end
    modulated_params: str = "all"  # all | conv (the reference: encoders' conv weights only)
    ratio_offset: float = 1.0  # k = 1 - tanh(alpha (rho - offset)); 0: the reference code
    blend: str = "none"  # none | fixed | ogb (unimodal auxiliary losses)
    aux_weight: float = 1.0
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = II("seed")


@dataclass
class GradBlendMethodConfig(OgmGeMethodConfig):
    """``method=grad_blend``: late fusion + gradient-blended unimodal auxiliary losses."""

    name: str = "grad_blend"
    modulation: str = "none"
    blend: str = "ogb"


@dataclass
class ClipRinceMethodConfig:
    """``method=clip_rince``: contrastive pairs robust to misalignment."""

    name: str = "clip_rince"
    modalities: list[str] = field(default_factory=list)  # the two modalities; []: first two
    loss: str = "rince"  # infonce | rince
    temperature: float = 0.1
    q: float = 0.5  # RINCE robustness in (0, 1]
    lam: float = 0.01  # RINCE partition weight
    keep_fraction: float = 1.0  # small-loss pair filter: fraction of pairs kept
    filter_warmup_epochs: int = 1
    proj_dim: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4


#: ``method=`` option name → config dataclass.
REPAIR_METHOD_CONFIGS: dict[str, type] = {
    "distill": DistillMethodConfig,
    "supervised_robust": SupervisedRobustMethodConfig,
    "ogm_ge": OgmGeMethodConfig,
    "grad_blend": GradBlendMethodConfig,
    "clip_rince": ClipRinceMethodConfig,
}
