"""Datasets and the batch contract."""

from modalab.data import audio, avmnist, captions, cremad, medmnist, mfeat, noisymnist, sanity
from modalab.data.batch import MultimodalBatch, collate_samples
from modalab.data.files import (
    DATA_ENV,
    SOURCES,
    CorruptDataError,
    MissingDataError,
    resolve_data_dir,
)
from modalab.data.memmap import MemmapMultimodalDataset, make_stream_loader, save_memmap
from modalab.data.presence import drop_modalities
from modalab.data.registry import DATASETS
from modalab.data.shapes import ShapesConfig, ShapesTruth, generate_shapes, make_shapes
from modalab.data.tensor_dataset import DataInfo, MultimodalTensorDataset, Splits, make_loader

__all__ = [
    "DATASETS",
    "DATA_ENV",
    "SOURCES",
    "CorruptDataError",
    "DataInfo",
    "MemmapMultimodalDataset",
    "MissingDataError",
    "MultimodalBatch",
    "MultimodalTensorDataset",
    "ShapesConfig",
    "ShapesTruth",
    "Splits",
    "audio",
    "avmnist",
    "captions",
    "collate_samples",
    "cremad",
    "drop_modalities",
    "generate_shapes",
    "make_loader",
    "make_shapes",
    "make_stream_loader",
    "medmnist",
    "mfeat",
    "noisymnist",
    "resolve_data_dir",
    "sanity",
    "save_memmap",
]
