"""Method recipes: LightningModules that wire encoders, objectives and training tricks."""

from modalab.methods.balanced_fusion import BalancedFusionMethod, build_grad_blend, build_ogm_ge
from modalab.methods.clip import CLIPMethod, build_clip
from modalab.methods.coca import CoCaMethod, build_coca
from modalab.methods.distill import DistillationMethod, build_distill
from modalab.methods.finetune import FineTuneMethod, build_finetune
from modalab.methods.fusion import CrossAttentionFusionMethod, build_fusion
from modalab.methods.masked import MaskedModellingMethod, build_masked
from modalab.methods.registry import METHODS
from modalab.methods.robust_clip import RobustCLIPMethod, build_clip_rince
from modalab.methods.robust_fusion import RobustFusionMethod, build_supervised_robust
from modalab.methods.siamese import (
    SiameseMethod,
    build_barlow,
    build_byol,
    build_moco,
    build_simclr,
    build_simsiam,
    build_slip,
    build_vicreg,
)
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
    "BalancedFusionMethod",
    "CLIPMethod",
    "CoCaMethod",
    "CrossAttentionFusionMethod",
    "DistillationMethod",
    "FineTuneMethod",
    "MaskedModellingMethod",
    "RobustCLIPMethod",
    "RobustFusionMethod",
    "SiameseMethod",
    "SupervisedFusionMethod",
    "build_barlow",
    "build_byol",
    "build_clip",
    "build_clip_rince",
    "build_coca",
    "build_distill",
    "build_finetune",
    "build_fusion",
    "build_grad_blend",
    "build_masked",
    "build_moco",
    "build_ogm_ge",
    "build_simclr",
    "build_simsiam",
    "build_slip",
    "build_supervised",
    "build_supervised_robust",
    "build_vicreg",
    "gaussian_enhanced_gradients",
    "gradient_blend_weights",
    "modality_dropout",
    "modality_scores",
    "ogm_ge_coefficients",
]
