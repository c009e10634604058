"""Metrics of the repair methods that the frozen-feature protocol does not measure.

The runner adds these records to every run, so that they land in the results store:

* ``head_acc`` — accuracy of a trained classifier head against the clean test labels: the
  fused head of every :class:`~modalab.models.multimodal.EmbeddingClassifier` (``supervised``;
  ``supervised_robust``, which fills absent modalities with zeros, a learned
  absent embedding or an imputation), and the fused head and each modality's additive share of
  ``ogm_ge``/``grad_blend`` (modality ``image``: the image share alone). Under a test-time
  missing scenario this is the fused accuracy at that missing rate.
* ``flag_precision``/``flag_recall`` (``condition="train pairs"``) — for ``clip_rince`` on a
  training split with broken pairs (``extras["misaligned"]``, set by ``scenario=[misalign]``):
  the pairs with the largest per-pair loss, as many as are broken, against the true mask
  (the small-loss criterion of Han et al., "Co-teaching", NeurIPS 2018). Flagging exactly as
  many as are broken makes precision equal recall; chance is the broken fraction.
* ``noisy_probe_acc`` and ``flag_precision``/``flag_recall`` (``condition="loss=<l>"`` or
  ``"loss=ce,forget=<r>"``) — robust linear probes on the frozen fused features trained on
  the (noisy) training labels (:func:`~modalab.evaluation.noisy_labels.noisy_label_probe`:
  GCE, Zhang & Sabuncu, NeurIPS 2018; SCE, Wang et al., ICCV 2019; small-loss selection),
  when ``eval.noisy_probe_losses`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader
from modalab.evaluation.features import FeatureSet, MetricRecord
from modalab.evaluation.noisy_labels import noisy_label_probe
from modalab.models.multimodal import EmbeddingClassifier

__all__ = [
    "broken_pair_flags",
    "head_accuracy_records",
    "noisy_probe_records",
    "pair_flag_records",
]

NOISY_PROBE_LOSSES = ("ce", "gce", "sce")


@runtime_checkable
class PairScorer(Protocol):
    """A contrastive method that scores each jointly present pair (``clip_rince``)."""

    modalities: tuple[str, str]

    def pair_losses(self, batch: MultimodalBatch) -> tuple[Tensor, Tensor]:
        """Per-pair losses ``[N]`` over jointly present rows, and those rows ``[B]``."""
        ...


@runtime_checkable
class AdditiveClassifier(EmbeddingClassifier, Protocol):
    """An :class:`EmbeddingClassifier` whose logits are a sum of per-modality shares."""

    def contributions(
        self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Each modality's additive share ``{m: [B, C]}`` of the logits."""
        ...


@torch.no_grad()
def head_accuracy_records(
    method: object, dataset: MultimodalTensorDataset, batch_size: int = 512
) -> list[MetricRecord]:
    """Accuracy of a method's own classifier head(s) on ``dataset`` (clean labels).

    Args:
        method: A trained method; an
            :class:`~modalab.models.multimodal.EmbeddingClassifier` has its fused head
            measured, an :class:`AdditiveClassifier` also each modality's share; any other
            method gives no records.
        dataset: The split (its ``present`` masks are respected by the heads).
        batch_size: Batch size of the pass.

    Returns:
        ``head_acc`` records, modality ``fused`` or the modality of a share.
    """
    if not isinstance(method, EmbeddingClassifier) or len(dataset) == 0:
        return []
    correct: dict[str, float] = {}
    device = getattr(method, "device", torch.device("cpu"))
    for batch in make_loader(dataset, batch_size):
        batch = batch.to(device)
        embeddings = method.encoder(batch.inputs)
        heads: dict[str, Tensor] = {"fused": method.classify(embeddings, batch.present)}
        if isinstance(method, AdditiveClassifier):
            heads.update(method.contributions(embeddings, batch.present))
        for name, logits in heads.items():
            hits = (logits.argmax(1) == batch.clean_label).sum().item()
            correct[name] = correct.get(name, 0.0) + float(hits)
    return [MetricRecord("head_acc", c / len(dataset), name, "") for name, c in correct.items()]


@torch.no_grad()
def broken_pair_flags(
    method: PairScorer, dataset: MultimodalTensorDataset, batch_size: int = 256
) -> tuple[Tensor, Tensor]:
    """Per-pair losses of ``dataset``'s jointly present rows and the flagged pairs.

    The pairs are scored in consecutive batches of ``batch_size`` (the loss of a pair depends
    on the other pairs of its batch, as in training); the ``k`` largest losses are flagged,
    ``k`` the number of broken pairs (``extras["misaligned"]``) among those rows.

    Returns:
        ``(flagged, broken)``: ``[P]`` bool masks over the jointly present rows.

    Raises:
        ValueError: If the split carries no ``misaligned`` mask.
    """
    if "misaligned" not in dataset.extras:
        raise ValueError(
            "The split has no extras['misaligned'] mask: apply scenario=[misalign] to it."
        )
    losses, broken = [], []
    for batch in make_loader(dataset, batch_size):
        loss, rows = method.pair_losses(batch.to(getattr(method, "device", "cpu")))
        losses.append(loss.float().cpu())
        broken.append(batch.extras["misaligned"][rows.cpu()].bool())
    loss_all, truth = torch.cat(losses), torch.cat(broken)
    flagged = torch.zeros_like(truth)
    k = int(truth.sum())
    if k:
        flagged[torch.topk(loss_all, k).indices] = True
    return flagged, truth


def pair_flag_records(method: object, dataset: MultimodalTensorDataset) -> list[MetricRecord]:
    """Flag precision/recall of broken training pairs by a ``clip_rince`` method's losses.

    Gives no records for other methods, for a split without a ``misaligned`` mask or without
    broken pairs.

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> ds = MultimodalTensorDataset({"image": torch.zeros(2, 3)}, torch.zeros(2).long())
        >>> pair_flag_records(object(), ds)
        []
    """
    if not isinstance(method, PairScorer) or "misaligned" not in dataset.extras:
        return []
    flagged, broken = broken_pair_flags(method, dataset)
    if not bool(broken.any()):
        return []
    hits = float((flagged & broken).sum())
    pair = "|".join(method.modalities)
    return [
        MetricRecord("flag_precision", hits / float(flagged.sum()), pair, "train pairs"),
        MetricRecord("flag_recall", hits / float(broken.sum()), pair, "train pairs"),
    ]


def noisy_probe_records(
    train: FeatureSet,
    test: FeatureSet,
    num_classes: int,
    losses: Sequence[str],
    forget_rate: float = 0.0,
    seed: int = 0,
) -> list[MetricRecord]:
    """Robust linear probes on frozen fused features trained on the training labels.

    Args:
        train: Training-split features (``label`` may be noisy; ``clean_label`` is the truth).
        test: Test-split features.
        num_classes: Number of classes.
        losses: Probe losses, each of ``ce``, ``gce``, ``sce``.
        forget_rate: If positive, a further cross-entropy probe with small-loss selection
            that flags and drops this fraction of the training samples.
        seed: Probe seed.

    Returns:
        ``noisy_probe_acc`` per loss (modality ``fused``, condition ``loss=<l>``), and with
        ``forget_rate`` also ``flag_precision``/``flag_recall`` of the flagged samples against
        the true noise mask (condition ``loss=ce,forget=<r>``).

    Raises:
        ValueError: If a loss is unknown or ``forget_rate`` is outside ``[0, 1)``.
    """
    unknown = [loss for loss in losses if loss not in NOISY_PROBE_LOSSES]
    if unknown:
        raise ValueError(
            f"eval.noisy_probe_losses has unknown losses {unknown}; valid: "
            f"{list(NOISY_PROBE_LOSSES)}."
        )
    if not 0 <= forget_rate < 1:
        raise ValueError(f"eval.noisy_probe_forget_rate={forget_rate} must lie in [0, 1).")
    rows = train.label_observed
    x, y = train.fused()[rows], train.label[rows]
    noise = (train.label != train.clean_label)[rows]
    tx, ty = test.fused(), test.clean_label
    records = []
    for loss in losses:
        out = noisy_label_probe(x, y, tx, ty, num_classes, loss=loss, seed=seed)
        records.append(MetricRecord("noisy_probe_acc", out.accuracy, "fused", f"loss={loss}"))
    if forget_rate > 0:
        condition = f"loss=ce,forget={forget_rate:g}"
        out = noisy_label_probe(
            x, y, tx, ty, num_classes, forget_rate=forget_rate, noise_mask=noise, seed=seed
        )
        records += [
            MetricRecord("noisy_probe_acc", out.accuracy, "fused", condition),
            MetricRecord("flag_precision", out.precision, "fused", condition),
            MetricRecord("flag_recall", out.recall, "fused", condition),
        ]
    return records
