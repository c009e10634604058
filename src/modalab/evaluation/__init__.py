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
)
from modalab.evaluation.retrieval import retrieval_recall, retrieval_recall_multi_positive
from modalab.evaluation.zero_shot import (
    class_embeddings,
    zero_shot_accuracy,
    zero_shot_logits,
    zero_shot_records,
)

__all__ = [
    "EvalConfig",
    "FeatureSet",
    "LinearProbeResult",
    "MetricRecord",
    "class_embeddings",
    "evaluate_representations",
    "extract_features",
    "fit_logistic_regression",
    "knn_predict",
    "label_subset",
    "linear_probe",
    "retrieval_recall",
    "retrieval_recall_multi_positive",
    "zero_shot_accuracy",
    "zero_shot_logits",
    "zero_shot_records",
]
