"""Predictors whose encoders run once and whose fusion and head re-run per intervention.

Counterfactual analysis asks the same model many questions about one sample (every subset of
modalities absent, a modality permuted or swapped). An :class:`EmbeddingPredictor` splits a
model into ``encode`` (per-modality embeddings, computed once and cached) and ``predict``
(fusion + head on embeddings and ``present`` masks, cheap and re-run per intervention).
Adapters cover the two kinds of trained model in modalab: a model that classifies from
embeddings and presence (an :class:`~modalab.models.multimodal.EmbeddingClassifier`:
:class:`FusionModelPredictor`) and frozen, e.g. CLIP-pretrained, encoders with a downstream
head trained on their fused features (:class:`FrozenEncoderPredictor`, built by
:func:`fit_fused_head`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.data.tensor_dataset import MultimodalTensorDataset, make_loader
from modalab.models.multimodal import ConcatFusion, EmbeddingClassifier

__all__ = [
    "EmbeddingPredictor",
    "EncodedSplit",
    "FrozenEncoderPredictor",
    "FusionModelPredictor",
    "encode_dataset",
    "fit_fused_head",
]


@runtime_checkable
class EmbeddingPredictor(Protocol):
    """A downstream predictor split into cached encoding and cheap re-prediction.

    ``predict(encode(batch), batch.present)`` must equal the model's prediction on ``batch``.
    An absent modality is expressed by ``present[m] = False``, exactly as in training.
    """

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names the predictor consumes, in a fixed order."""
        ...

    def encode(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality embeddings ``{m: [B, D_m]}``."""
        ...

    def predict(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Class logits ``[B, C]`` from embeddings and presence masks ``{m: [B]}``."""
        ...


class FusionModelPredictor:
    """Adapter for an :class:`~modalab.models.multimodal.EmbeddingClassifier`.

    ``encode`` runs the per-modality encoders; ``predict`` runs only what follows them
    (``classify``: e.g. fusion and head, or a recipe's fill of absent modalities and head), so
    "absent" is what the model saw in training. The model is put in evaluation mode.

    Args:
        model: The trained classifier: a
            :class:`~modalab.models.multimodal.LateFusionClassifier`, or a method such as
            ``supervised``, ``supervised_robust``, ``ogm_ge``.

    Example:
        >>> from modalab.models.multimodal import LateFusionClassifier, MultimodalEncoder
        >>> enc = MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(3, 4), "b": nn.Linear(2, 4)}))
        >>> model = LateFusionClassifier(enc, ConcatFusion(), nn.Linear(10, 5))
        >>> predictor = FusionModelPredictor(model)
        >>> batch = MultimodalBatch.from_inputs({"a": torch.ones(2, 3), "b": torch.ones(2, 2)})
        >>> emb = predictor.encode(batch)
        >>> torch.allclose(predictor.predict(emb, batch.present),
        ...                model(batch.inputs, batch.present))
        True
    """

    def __init__(self, model: EmbeddingClassifier) -> None:
        if isinstance(model, nn.Module):
            model.eval()
        self.model = model

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names of the encoders."""
        return tuple(self.model.encoder.modalities)

    @torch.no_grad()
    def encode(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality encoder outputs ``{m: [B, D]}``."""
        return self.model.encoder({m: batch.inputs[m] for m in self.modalities})

    @torch.no_grad()
    def predict(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, C]`` from fusion + head only."""
        ordered = {m: embeddings[m] for m in self.modalities}
        return self.model.classify(ordered, {m: present[m] for m in self.modalities})


class FrozenEncoderPredictor:
    """Frozen encoders plus a downstream head on their fused features.

    The fused vector is :meth:`FeatureSet.fused <modalab.evaluation.features.FeatureSet.fused>`:
    the features of each modality (zeroed where absent) and the presence flags
    (:class:`~modalab.models.multimodal.ConcatFusion`).

    Args:
        encode_fn: Maps a batch to ``{m: [B, D_m]}`` (e.g. ``CLIPMethod.representations``).
        head: Maps the fused ``[B, sum(D_m) + M]`` to logits ``[B, C]``.
        modalities: Modality order of the fused vector.
    """

    def __init__(
        self,
        encode_fn: Callable[[MultimodalBatch], Mapping[str, Tensor]],
        head: nn.Module,
        modalities: Sequence[str],
    ) -> None:
        self.encode_fn = encode_fn
        self.head = head.eval()
        self._modalities = tuple(modalities)
        self.fusion = ConcatFusion()

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality order of the fused vector."""
        return self._modalities

    @torch.no_grad()
    def encode(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Frozen per-modality features ``{m: [B, D_m]}``."""
        out = self.encode_fn(batch)
        return {m: out[m].float() for m in self.modalities}

    @torch.no_grad()
    def predict(self, embeddings: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[B, C]`` of the head on the fused features."""
        fused = self.fusion(
            {m: embeddings[m] for m in self.modalities}, {m: present[m] for m in self.modalities}
        )
        return self.head(fused)  # type: ignore[no-any-return]


@dataclass
class EncodedSplit:
    """Cached per-modality embeddings of a whole split.

    Attributes:
        embeddings: Modality → ``[N, D_m]``.
        present: Modality → ``[N]`` bool, as observed in the data.
        label: ``[N]`` clean labels (the truth the analysis is scored against).
        index: ``[N]`` sample ids.
        num_classes: Number of classes.
    """

    embeddings: dict[str, Tensor]
    present: dict[str, Tensor]
    label: Tensor
    index: Tensor
    num_classes: int

    def __post_init__(self) -> None:
        n = int(self.label.shape[0])
        for name, value in {**self.embeddings, **self.present}.items():
            if value.shape[0] != n:
                raise ValueError(
                    f"EncodedSplit: {name!r} has {value.shape[0]} rows but there are {n} labels."
                )

    @property
    def num_samples(self) -> int:
        """Number of samples."""
        return int(self.label.shape[0])

    @property
    def modalities(self) -> tuple[str, ...]:
        """Modality names."""
        return tuple(self.embeddings)

    def select(self, rows: Tensor) -> EncodedSplit:
        """The sub-split of the given rows."""
        return EncodedSplit(
            embeddings={m: e[rows] for m, e in self.embeddings.items()},
            present={m: p[rows] for m, p in self.present.items()},
            label=self.label[rows],
            index=self.index[rows],
            num_classes=self.num_classes,
        )


@torch.no_grad()
def encode_dataset(
    predictor: EmbeddingPredictor, dataset: MultimodalTensorDataset, batch_size: int = 512
) -> EncodedSplit:
    """Run the predictor's encoders once over a dataset and cache the embeddings.

    Args:
        predictor: The predictor.
        dataset: The split to analyse.
        batch_size: Batch size of the encoding pass.

    Returns:
        The cached embeddings (on CPU, float32) with presence, clean labels and ids.

    Raises:
        ValueError: If the dataset lacks a modality the predictor needs.
    """
    missing = [m for m in predictor.modalities if m not in dataset.modalities]
    if missing:
        raise ValueError(
            f"The dataset lacks modalities {missing} that the predictor needs; it has "
            f"{list(dataset.modalities)}."
        )
    chunks: dict[str, list[Tensor]] = {m: [] for m in predictor.modalities}
    for batch in make_loader(dataset, batch_size):
        out = predictor.encode(batch)
        for m in predictor.modalities:
            chunks[m].append(out[m].detach().float().cpu())
    return EncodedSplit(
        embeddings={m: torch.cat(v) for m, v in chunks.items()},
        present={m: dataset.present[m].clone() for m in predictor.modalities},
        label=dataset.clean_label.clone(),
        index=dataset.index.clone(),
        num_classes=dataset.num_classes,
    )


def fit_fused_head(
    train: EncodedSplit,
    hidden: int = 0,
    modality_dropout: float = 0.3,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    seed: int = 0,
) -> nn.Module:
    """Train a downstream head on frozen fused features with modality dropout.

    Each step drops every modality of every sample independently with probability
    ``modality_dropout`` (marking it absent: zeroed features, flag 0), so that the
    counterfactual inputs "this modality absent" and "every modality absent" are
    in-distribution for the head. Features are standardised inside the head (statistics of the
    present rows of ``train``).

    Args:
        train: Cached training features (only rows with the modality present are used for its
            statistics; labels are the clean labels of the split).
        hidden: ``0`` for a linear probe, else the width of a one-hidden-layer MLP.
        modality_dropout: Probability of dropping each modality in training, in ``[0, 1)``.
        epochs: Passes over the training features.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: Mini-batch size.
        seed: Seed of initialisation, shuffling and dropout.

    Returns:
        The head, mapping the fused ``[B, sum(D_m) + M]`` to logits ``[B, C]``.

    Example:
        >>> emb = {"a": torch.randn(64, 2), "b": torch.randn(64, 2)}
        >>> split = EncodedSplit(emb, {m: torch.ones(64, dtype=torch.bool) for m in emb},
        ...                      (emb["a"][:, 0] > 0).long(), torch.arange(64), 2)
        >>> head = fit_fused_head(split, epochs=30)
        >>> head(torch.zeros(3, 6)).shape
        torch.Size([3, 2])
    """
    if not 0 <= modality_dropout < 1:
        raise ValueError(f"modality_dropout must be in [0, 1), got {modality_dropout}.")
    if hidden < 0 or epochs < 1:
        raise ValueError(f"hidden must be >= 0 and epochs >= 1, got {hidden} and {epochs}.")
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    names = train.modalities
    mean = {m: _masked_mean(train.embeddings[m], train.present[m]) for m in names}
    std = {
        m: _masked_mean((train.embeddings[m] - mean[m]) ** 2, train.present[m])
        .sqrt()
        .clamp_min(1e-6)
        for m in names
    }
    in_dim = sum(train.embeddings[m].shape[1] for m in names) + len(names)
    net: nn.Module = (
        nn.Linear(in_dim, train.num_classes)
        if hidden == 0
        else nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, train.num_classes)
        )
    )
    head = _StandardisedHead(names, mean, std, net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    fusion = ConcatFusion()
    n = train.num_samples
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            rows = order[start : start + batch_size]
            keep = {
                m: train.present[m][rows]
                & (torch.rand(rows.numel(), generator=generator) >= modality_dropout)
                for m in names
            }
            fused = fusion({m: train.embeddings[m][rows] for m in names}, keep)
            loss = F.cross_entropy(head(fused), train.label[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return head.eval()


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    rows = x[mask] if bool(mask.any()) else x
    return rows.mean(dim=0)


class _StandardisedHead(nn.Module):
    """Standardises each modality block of a fused vector (absent ones stay 0), then ``net``."""

    mean: Tensor
    std: Tensor

    def __init__(
        self,
        names: Sequence[str],
        mean: Mapping[str, Tensor],
        std: Mapping[str, Tensor],
        net: nn.Module,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.cat([mean[m] for m in names]))
        self.register_buffer("std", torch.cat([std[m] for m in names]))
        self.sizes = [int(mean[m].shape[0]) for m in names]
        self.net = net

    def forward(self, fused: Tensor) -> Tensor:
        d = int(self.mean.shape[0])
        features, flags = fused[:, :d], fused[:, d:]
        mask = torch.repeat_interleave(flags, torch.tensor(self.sizes), dim=1)
        features = (features - self.mean) / self.std * mask
        return self.net(torch.cat([features, flags], dim=1))  # type: ignore[no-any-return]
