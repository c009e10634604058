"""Method recipes: LightningModules that wire encoders, objectives and training tricks."""

from modalab.methods.balanced_fusion import BalancedFusionMethod, build_grad_blend, build_ogm_ge
from modalab.methods.clip import CLIPMethod, build_clip
from modalab.methods.distill import TEACHER_LOADERS, DistillationMethod, build_distill
from modalab.methods.registry import METHODS
from modalab.methods.robust_clip import RobustCLIPMethod, build_clip_rince
from modalab.methods.robust_fusion import RobustFusionMethod, build_supervised_robust
from modalab.methods.supervised import SupervisedFusionMethod, build_supervised
from modalab.methods.tricks import (
    gaussian_enhanced_gradients,
    gradient_blend_weights,
    modality_dropout,
    modality_scores,
    ogm_ge_coefficients,
)

__all__ = [
    "METHODS",
    "TEACHER_LOADERS",
    "BalancedFusionMethod",
    "CLIPMethod",
    "DistillationMethod",
    "RobustCLIPMethod",
    "RobustFusionMethod",
    "SupervisedFusionMethod",
    "build_clip",
    "build_clip_rince",
    "build_distill",
    "build_grad_blend",
    "build_ogm_ge",
    "build_supervised",
    "build_supervised_robust",
    "gaussian_enhanced_gradients",
    "gradient_blend_weights",
    "modality_dropout",
    "modality_scores",
    "ogm_ge_coefficients",
]
