"""Losses: pure functions and small modules of embeddings, with no knowledge of models or data."""

from modalab.objectives.clip import CLIPLoss, ContrastiveLossOutput, clip_loss, info_nce_pair
from modalab.objectives.distributed import gather_with_grad, is_distributed
from modalab.objectives.registry import OBJECTIVES
from modalab.objectives.supervised import masked_cross_entropy

__all__ = [
    "OBJECTIVES",
    "CLIPLoss",
    "ContrastiveLossOutput",
    "clip_loss",
    "gather_with_grad",
    "info_nce_pair",
    "is_distributed",
    "masked_cross_entropy",
]
