"""Evaluation protocols over frozen representations."""

from modalab.evaluation.features import (
    EvalConfig,
    FeatureSet,
    MetricRecord,
    evaluate_representations,
    extract_features,
)
from modalab.evaluation.probes import (
    LinearProbeResult,
    fit_logistic_regression,
    knn_predict,
    label_subset,
    linear_probe,
    retrieval_recall,
)

__all__ = [
    "EvalConfig",
    "FeatureSet",
    "LinearProbeResult",
    "MetricRecord",
    "evaluate_representations",
    "extract_features",
    "fit_logistic_regression",
    "knn_predict",
    "label_subset",
    "linear_probe",
    "retrieval_recall",
]
