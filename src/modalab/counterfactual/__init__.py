"""Counterfactual modality analysis: interventions, attributions, swap tests, debiasing."""

from modalab.counterfactual.attributions import (
    METRICS,
    CoalitionValues,
    ShapleyResult,
    ablation_importance,
    coalition_values,
    interaction_weights,
    mean_ci,
    perceptual_score,
    predict_split,
    sample_values,
    shapley_from_coalitions,
    shapley_values,
    shapley_weights,
)
from modalab.counterfactual.debias import DebiasResult, counterfactual_debias
from modalab.counterfactual.interventions import INTERVENTIONS, Intervened, intervene
from modalab.counterfactual.missing import cached_missing_rate_curve
from modalab.counterfactual.plots import class_heatmap, shapley_bars, swap_matrix
from modalab.counterfactual.predictors import (
    EmbeddingPredictor,
    EncodedSplit,
    FrozenEncoderPredictor,
    FusionModelPredictor,
    encode_dataset,
    fit_fused_head,
)
from modalab.counterfactual.report import (
    ANALYSES,
    COLUMNS,
    AnalysisSettings,
    CounterfactualReport,
    analyse,
    intervention_effects,
)
from modalab.counterfactual.swap import swap_test

__all__ = [
    "ANALYSES",
    "COLUMNS",
    "INTERVENTIONS",
    "METRICS",
    "AnalysisSettings",
    "CoalitionValues",
    "CounterfactualReport",
    "DebiasResult",
    "EmbeddingPredictor",
    "EncodedSplit",
    "FrozenEncoderPredictor",
    "FusionModelPredictor",
    "Intervened",
    "ShapleyResult",
    "ablation_importance",
    "analyse",
    "cached_missing_rate_curve",
    "class_heatmap",
    "coalition_values",
    "counterfactual_debias",
    "encode_dataset",
    "fit_fused_head",
    "interaction_weights",
    "intervene",
    "intervention_effects",
    "mean_ci",
    "perceptual_score",
    "predict_split",
    "sample_values",
    "shapley_bars",
    "shapley_from_coalitions",
    "shapley_values",
    "shapley_weights",
    "swap_matrix",
    "swap_test",
]
