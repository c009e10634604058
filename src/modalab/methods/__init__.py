"""Method recipes: LightningModules that wire encoders, objectives and training tricks."""

from modalab.methods.clip import CLIPMethod, build_clip
from modalab.methods.coca import CoCaMethod, build_coca
from modalab.methods.fusion import CrossAttentionFusionMethod, build_fusion
from modalab.methods.masked import MaskedModellingMethod, build_masked
from modalab.methods.registry import METHODS
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

__all__ = [
    "METHODS",
    "CLIPMethod",
    "CoCaMethod",
    "CrossAttentionFusionMethod",
    "MaskedModellingMethod",
    "SiameseMethod",
    "SupervisedFusionMethod",
    "build_barlow",
    "build_byol",
    "build_clip",
    "build_coca",
    "build_fusion",
    "build_masked",
    "build_moco",
    "build_simclr",
    "build_simsiam",
    "build_slip",
    "build_supervised",
    "build_vicreg",
]
