"""Datasets and the batch contract."""

from modalab.data.batch import MultimodalBatch, collate_samples
from modalab.data.memmap import MemmapMultimodalDataset, make_stream_loader, save_memmap
from modalab.data.registry import DATASETS
from modalab.data.shapes import ShapesConfig, ShapesTruth, generate_shapes, make_shapes
from modalab.data.tensor_dataset import MultimodalTensorDataset, Splits, make_loader

__all__ = [
    "DATASETS",
    "MemmapMultimodalDataset",
    "MultimodalBatch",
    "MultimodalTensorDataset",
    "ShapesConfig",
    "ShapesTruth",
    "Splits",
    "collate_samples",
    "generate_shapes",
    "make_loader",
    "make_shapes",
    "make_stream_loader",
    "save_memmap",
]
