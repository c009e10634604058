"""Counterfactual debiasing of a dominant modality at inference time.

After Niu et al., "Counterfactual VQA: A Cause-Effect Look at Language Bias", CVPR 2021. With
``Z(S)`` the log-probabilities of the model that sees the modalities ``S`` (the others absent,
as in training), the *total effect* of the inputs is ``TE = Z(all) - Z(empty)`` and the
*natural direct effect* of the dominant modality ``d`` — what it does on its own, without the
others — is ``NDE = Z({d}) - Z(empty)``. The *total indirect effect*
``TIE = TE - alpha * NDE = Z(all) - Z(empty) - alpha (Z({d}) - Z(empty))`` removes the
shortcut that ``d`` provides alone, and its argmax is the debiased prediction (``alpha = 1``
is the paper's; ``Z(empty)`` cancels then).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch.nn.functional as F
from torch import Tensor

from modalab.counterfactual.attributions import per_class_rows, predict_split
from modalab.counterfactual.predictors import EmbeddingPredictor, EncodedSplit

__all__ = ["DebiasResult", "counterfactual_debias"]


@dataclass
class DebiasResult:
    """Predictions before and after removing a modality's direct effect.

    Attributes:
        modality: The dominant modality whose direct effect is removed.
        alpha: Weight of the natural direct effect.
        full: ``[N, C]`` ``Z(all)``, the model's log-probabilities as is.
        total_effect: ``[N, C]`` ``Z(all) - Z(empty)``.
        direct_effect: ``[N, C]`` ``Z({d}) - Z(empty)``.
        debiased: ``[N, C]`` ``TE - alpha * NDE``.
        label: ``[N]`` true classes.
    """

    modality: str
    alpha: float
    full: Tensor
    total_effect: Tensor
    direct_effect: Tensor
    debiased: Tensor
    label: Tensor

    @property
    def accuracy(self) -> float:
        """Accuracy of the model as is (argmax of ``Z(all)``)."""
        return float((self.full.argmax(1) == self.label).float().mean())

    @property
    def debiased_accuracy(self) -> float:
        """Accuracy of the argmax of the total indirect effect."""
        return float((self.debiased.argmax(1) == self.label).float().mean())

    def table(self, confidence: float = 0.95) -> pd.DataFrame:
        """Accuracy before/after debiasing and their difference, overall and per class."""
        before = (self.full.argmax(1) == self.label).double()
        after = (self.debiased.argmax(1) == self.label).double()
        rows, target = [], f"alpha={self.alpha:g}"
        for name, values in (
            ("accuracy", before),
            ("debiased_accuracy", after),
            ("gain", after - before),
        ):
            rows += per_class_rows(
                "debias", self.modality, target, name, values, self.label, confidence
            )
        frame = pd.DataFrame(rows)
        frame["metric"] = "accuracy"
        return frame


def counterfactual_debias(
    predictor: EmbeddingPredictor,
    split: EncodedSplit,
    modality: str,
    alpha: float = 1.0,
    batch_size: int = 4096,
) -> DebiasResult:
    """Subtract the natural direct effect of ``modality`` from the total effect.

    Args:
        predictor: The predictor (it must have been trained to see absent modalities, e.g.
            with modality dropout, for ``Z({d})`` and ``Z(empty)`` to be meaningful).
        split: Cached embeddings of the analysed split.
        modality: The dominant modality.
        alpha: Weight of the direct effect (``1`` as in counterfactual VQA).
        batch_size: Batch size of the head passes.

    Returns:
        The effects and debiased scores.

    Raises:
        ValueError: If ``modality`` is not one of the predictor's.
    """
    if modality not in predictor.modalities:
        raise ValueError(
            f"Cannot debias {modality!r}: the predictor's modalities are "
            f"{list(predictor.modalities)}."
        )

    def z(keep: set[str]) -> Tensor:
        present = {m: split.present[m] & (m in keep) for m in predictor.modalities}
        logits = predict_split(predictor, split.embeddings, present, batch_size)
        return F.log_softmax(logits.double(), dim=1)

    z_all, z_empty = z(set(predictor.modalities)), z(set())
    total = z_all - z_empty
    direct = z({modality}) - z_empty
    return DebiasResult(modality, alpha, z_all, total, direct, total - alpha * direct, split.label)
