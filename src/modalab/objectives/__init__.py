"""Losses: pure functions and small modules of embeddings, with no knowledge of models or data."""

from modalab.objectives.clip import CLIPLoss, ContrastiveLossOutput, clip_loss, info_nce_pair
from modalab.objectives.distillation import (
    DistillationOutput,
    FeatureDistillationLoss,
    SoftLabelDistillationLoss,
    feature_distillation_loss,
    soft_label_distillation_loss,
)
from modalab.objectives.distributed import gather_with_grad, is_distributed
from modalab.objectives.imputation import ImputationOutput, imputation_loss
from modalab.objectives.registry import OBJECTIVES
from modalab.objectives.robust import (
    GCELoss,
    RINCELoss,
    RobustLossOutput,
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
    "CLIPLoss",
    "ContrastiveLossOutput",
    "DistillationOutput",
    "FeatureDistillationLoss",
    "GCELoss",
    "ImputationOutput",
    "RINCELoss",
    "RobustLossOutput",
    "SCELoss",
    "SoftLabelDistillationLoss",
    "clip_loss",
    "feature_distillation_loss",
    "gather_with_grad",
    "generalized_cross_entropy",
    "imputation_loss",
    "info_nce_pair",
    "is_distributed",
    "masked_cross_entropy",
    "pairwise_info_nce",
    "rince_loss",
    "rince_pair",
    "small_loss_selection",
    "soft_label_distillation_loss",
    "symmetric_cross_entropy",
]
