"""Losses: pure functions and small modules of embeddings, with no knowledge of models or data."""

from modalab.objectives.clip import CLIPLoss, ContrastiveLossOutput, clip_loss, info_nce_pair
from modalab.objectives.contrastive import (
    MoCoLoss,
    NTXentLoss,
    moco_infonce,
    nt_xent,
    nt_xent_loss,
)
from modalab.objectives.distributed import gather_with_grad, is_distributed
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
from modalab.objectives.supervised import masked_cross_entropy

__all__ = [
    "OBJECTIVES",
    "BYOLLoss",
    "BarlowTwinsLoss",
    "CLIPLoss",
    "ContrastiveLossOutput",
    "LossOutput",
    "MaskedModalityLoss",
    "MoCoLoss",
    "NTXentLoss",
    "VICRegLoss",
    "barlow_twins_loss",
    "byol_loss",
    "captioning_loss",
    "clip_loss",
    "gather_with_grad",
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
    "simsiam_loss",
    "vicreg_loss",
]
