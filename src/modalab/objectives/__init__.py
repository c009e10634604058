"""Losses: pure functions and small modules of embeddings, with no knowledge of models or data."""

from modalab.objectives.clip import CLIPLoss, clip_loss, info_nce_pair
from modalab.objectives.contrastive import (
    MoCoLoss,
    NTXentLoss,
    moco_infonce,
    nt_xent,
    nt_xent_loss,
)
from modalab.objectives.distillation import (
    ContrastiveDistillationLoss,
    FeatureDistillationLoss,
    SoftLabelDistillationLoss,
    contrastive_distillation_loss,
    feature_distillation_loss,
    soft_label_distillation_loss,
)
from modalab.objectives.distributed import gather_with_grad, is_distributed
from modalab.objectives.imputation import imputation_loss
from modalab.objectives.masked import (
    MaskedModalityLoss,
    captioning_loss,
    masked_feature_loss,
    masked_modality_loss,
    masked_token_loss,
    matching_loss,
)
from modalab.objectives.noncontrastive import (
    BarlowTwinsLoss,
    BYOLLoss,
    VICRegLoss,
    barlow_twins_loss,
    byol_loss,
    simsiam_loss,
    vicreg_loss,
)
from modalab.objectives.output import LossOutput
from modalab.objectives.registry import OBJECTIVES
from modalab.objectives.robust import (
    GCELoss,
    RINCELoss,
    SCELoss,
    generalized_cross_entropy,
    pairwise_info_nce,
    rince_loss,
    rince_pair,
    small_loss_selection,
    symmetric_cross_entropy,
)
from modalab.objectives.supervised import masked_cross_entropy

__all__ = [
    "OBJECTIVES",
    "BYOLLoss",
    "BarlowTwinsLoss",
    "CLIPLoss",
    "ContrastiveDistillationLoss",
    "FeatureDistillationLoss",
    "GCELoss",
    "LossOutput",
    "MaskedModalityLoss",
    "MoCoLoss",
    "NTXentLoss",
    "RINCELoss",
    "SCELoss",
    "SoftLabelDistillationLoss",
    "VICRegLoss",
    "barlow_twins_loss",
    "byol_loss",
    "captioning_loss",
    "clip_loss",
    "contrastive_distillation_loss",
    "feature_distillation_loss",
    "gather_with_grad",
    "generalized_cross_entropy",
    "imputation_loss",
    "info_nce_pair",
    "is_distributed",
    "masked_cross_entropy",
    "masked_feature_loss",
    "masked_modality_loss",
    "masked_token_loss",
    "matching_loss",
    "moco_infonce",
    "nt_xent",
    "nt_xent_loss",
    "pairwise_info_nce",
    "rince_loss",
    "rince_pair",
    "simsiam_loss",
    "small_loss_selection",
    "soft_label_distillation_loss",
    "symmetric_cross_entropy",
    "vicreg_loss",
]
