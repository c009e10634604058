"""Zero-shot classification with class-name prompts, for any dataset with a text modality.

As in CLIP (Radford et al., "Learning Transferable Visual Models From Natural Language
Supervision", ICML 2021): each class is described by prompts ("a photo of a {class}."), the
prompts are embedded by the text encoder into the joint space, averaged over templates (prompt
ensembling) and re-normalised; a sample of another modality is assigned the class whose prompt
embedding has the highest cosine similarity with its joint embedding. No label is used.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.evaluation.features import FeatureSet, MetricRecord

__all__ = [
    "class_embeddings",
    "zero_shot_accuracy",
    "zero_shot_logits",
    "zero_shot_records",
]


def zero_shot_logits(queries: Tensor, classes: Tensor) -> Tensor:
    """Cosine similarities ``[N, C]`` between query embeddings ``[N, E]`` and classes ``[C, E]``.

    Example:
        >>> zero_shot_logits(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        tensor([[1., 0.]])
    """
    if queries.shape[-1] != classes.shape[-1]:
        raise ValueError(
            f"Query embeddings have dimension {queries.shape[-1]} but class embeddings "
            f"{classes.shape[-1]}; both must be in the same joint space."
        )
    return F.normalize(queries, dim=-1) @ F.normalize(classes, dim=-1).T


def zero_shot_accuracy(
    queries: Tensor, classes: Tensor, label: Tensor, present: Tensor | None = None
) -> float:
    """Accuracy of the nearest class prompt over the rows where the query modality is present.

    Args:
        queries: ``[N, E]`` joint embeddings of the query modality.
        classes: ``[C, E]`` class embeddings.
        label: ``[N]`` true labels.
        present: ``[N]`` bool; absent rows are not scored.

    Returns:
        The accuracy (``nan`` if no row is present).

    Example:
        >>> q = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0]])
        >>> round(zero_shot_accuracy(q, torch.eye(2), torch.tensor([0, 1, 1])), 4)
        0.6667
    """
    rows = present if present is not None else torch.ones_like(label, dtype=torch.bool)
    if not bool(rows.any()):
        return float("nan")
    pred = zero_shot_logits(queries[rows], classes).argmax(dim=1)
    return float((pred == label[rows]).float().mean())


@torch.no_grad()
def class_embeddings(
    encode: Callable[[MultimodalBatch], dict[str, Tensor]],
    project: Callable[[dict[str, Tensor]], Mapping[str, Tensor]],
    prompt_tokens: Tensor,
    text_modality: str = "text",
    device: torch.device | str = "cpu",
) -> Tensor:
    """Embed class prompts ``[C, T, L]`` and average over the T templates: ``[C, E]``.

    Args:
        encode: A method's ``representations`` (batch → per-modality representations); only the
            text modality is given.
        project: A method's ``joint_embeddings``.
        prompt_tokens: Token ids of every class in every template.
        text_modality: Name of the text modality.
        device: Device of the model.

    Returns:
        L2-normalised class embeddings.
    """
    num_classes, templates, length = prompt_tokens.shape
    tokens = prompt_tokens.reshape(num_classes * templates, length).to(device)
    batch = MultimodalBatch.from_inputs({text_modality: tokens})
    joint = project(encode(batch))[text_modality].float().cpu()
    joint = F.normalize(joint, dim=-1).reshape(num_classes, templates, -1).mean(dim=1)
    return F.normalize(joint, dim=-1)


def zero_shot_records(
    test: FeatureSet, classes: Tensor, text_modality: str = "text"
) -> list[MetricRecord]:
    """``zero_shot_acc`` of every non-text modality of ``test`` (joint embeddings, clean labels)."""
    records = []
    for modality, joint in test.joint.items():
        if modality == text_modality or joint.shape[1] != classes.shape[1]:
            continue
        accuracy = zero_shot_accuracy(joint, classes, test.clean_label, test.present[modality])
        records.append(MetricRecord("zero_shot_acc", accuracy, modality, "prompts"))
    return records
