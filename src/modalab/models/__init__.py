"""Per-modality encoders, fusion modules and projection heads (no losses)."""

from modalab.models.encoders import (
    ENCODERS,
    ConvEncoder,
    MLPEncoder,
    TokenTransformerEncoder,
    build_encoder,
    default_encoder_name,
)
from modalab.models.missing import AbsentEmbeddings, EmbeddingImputer, fill_missing
from modalab.models.multimodal import (
    ConcatFusion,
    EmbeddingClassifier,
    LateFusionClassifier,
    MeanFusion,
    MultimodalEncoder,
    ProjectionHead,
)
from modalab.models.pretrained import PretrainedTextEncoder

__all__ = [
    "ENCODERS",
    "AbsentEmbeddings",
    "ConcatFusion",
    "ConvEncoder",
    "EmbeddingClassifier",
    "EmbeddingImputer",
    "LateFusionClassifier",
    "MLPEncoder",
    "MeanFusion",
    "MultimodalEncoder",
    "PretrainedTextEncoder",
    "ProjectionHead",
    "TokenTransformerEncoder",
    "build_encoder",
    "default_encoder_name",
    "fill_missing",
]
