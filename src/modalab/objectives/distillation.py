"""Cross-modal knowledge distillation losses: feature regression and soft-label distillation.

A *teacher* embeds (or classifies) the resource-rich modality, a *student* the resource-poor
one; the losses below pull the student towards the teacher on paired samples, counting only the
rows where both modalities are present. The losses know only tensors: which network produced
them is the recipe's business (:mod:`modalab.methods.distill`).

References:
    Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NeurIPS Deep
    Learning Workshop 2015 (soft labels with a temperature).
    Gupta, Hoffman & Malik, "Cross Modal Distillation for Supervision Transfer", CVPR 2016
    (regressing a student's features onto a teacher's on paired, unlabelled data).
    Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning", CVPR 2022
    (contrastive alignment of a student to a locked teacher).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.objectives.clip import clip_loss
from modalab.objectives.distributed import gather_with_grad
from modalab.objectives.output import LossOutput, zero_like_graph
from modalab.objectives.precision import full_precision
from modalab.objectives.registry import OBJECTIVES

__all__ = [
    "ContrastiveDistillationLoss",
    "FeatureDistillationLoss",
    "SoftLabelDistillationLoss",
    "contrastive_distillation_loss",
    "feature_distillation_loss",
    "soft_label_distillation_loss",
]

_FEATURE_KINDS = ("cosine", "mse")


def _rows(mask: Tensor | None, size: int, device: torch.device) -> Tensor:
    if mask is None:
        return torch.ones(size, dtype=torch.bool, device=device)
    if mask.dtype != torch.bool or mask.shape != (size,):
        raise ValueError(
            f"The row mask must be a bool tensor of shape ({size},), got {mask.dtype} "
            f"{tuple(mask.shape)}; pass present[student] & present[teacher]."
        )
    return mask


def feature_distillation_loss(
    student: Tensor, teacher: Tensor, mask: Tensor | None = None, kind: str = "cosine"
) -> LossOutput:
    """Regress student embeddings onto (detached) teacher embeddings.

    ``cosine``: ``mean_i (1 - cos(s_i, t_i))``. ``mse``: ``mean_i ||s_i - t_i||^2 / D`` (the
    mean over rows and dimensions). The teacher is detached: the student moves, never the
    teacher.

    Args:
        student: ``[B, D]`` student embeddings (already mapped to the teacher's space).
        teacher: ``[B, D]`` teacher embeddings.
        mask: ``[B]`` bool, rows where both modalities are present (default: all rows).
        kind: ``"cosine"`` or ``"mse"``.

    Returns:
        The loss; a graph-keeping zero when no row is selected.

    Raises:
        ValueError: For an unknown ``kind`` or mismatched shapes.

    Example:
        >>> s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> feature_distillation_loss(s, t, kind="cosine").loss.item()  # (0 + 1) / 2
        0.5
        >>> feature_distillation_loss(s, t, kind="mse").loss.item()  # (0 + 2) / (2 * 2)
        0.5
    """
    if kind not in _FEATURE_KINDS:
        raise ValueError(f"Unknown feature distillation kind {kind!r}; valid: {_FEATURE_KINDS}.")
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings must "
            "both be [B, D] with the same D; map the student to the teacher's space first."
        )
    rows = _rows(mask, student.shape[0], student.device)
    count = int(rows.sum())
    if count == 0:
        zero = zero_like_graph(student)
        return LossOutput(zero, {kind: zero.detach()}, {kind: 0})
    s, t = student[rows], teacher[rows].detach()
    if kind == "cosine":
        loss = (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
    else:
        loss = F.mse_loss(s, t)
    return LossOutput(loss, {kind: loss.detach()}, {kind: count})


def soft_label_distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 4.0,
    mask: Tensor | None = None,
) -> LossOutput:
    """Hinton et al.'s knowledge distillation: KL between tempered teacher and student.

    ``T^2 · mean_i KL(softmax(t_i / T) || softmax(s_i / T))``; the ``T^2`` factor keeps the
    gradient scale independent of ``T`` (Hinton et al., 2015, section 2).

    Args:
        student_logits: ``[B, C]``.
        teacher_logits: ``[B, C]`` (detached inside).
        temperature: ``T > 0``.
        mask: ``[B]`` bool, rows where both modalities are present (default: all rows).

    Returns:
        The loss; a graph-keeping zero when no row is selected.

    Raises:
        ValueError: For a non-positive temperature or mismatched shapes.

    Example:
        >>> s = torch.zeros(1, 2)
        >>> t = torch.tensor([[0.0, 1000.0]])  # teacher sure of class 1
        >>> round(soft_label_distillation_loss(s, t, temperature=1.0).loss.item(), 4)  # log 2
        0.6931
    """
    if temperature <= 0:
        raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} "
            "logits must both be [B, C] over the same classes."
        )
    rows = _rows(mask, student_logits.shape[0], student_logits.device)
    count = int(rows.sum())
    if count == 0:
        zero = zero_like_graph(student_logits)
        return LossOutput(zero, {"kd": zero.detach()}, {"kd": 0})
    log_p_student = F.log_softmax(student_logits[rows] / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits[rows].detach() / temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    loss = kl * temperature**2
    return LossOutput(loss, {"kd": loss.detach()}, {"kd": count})


def contrastive_distillation_loss(
    student: Tensor,
    teacher: Tensor,
    mask: Tensor | None = None,
    temperature: float = 0.1,
    gather_distributed: bool = True,
) -> LossOutput:
    """LiT-style contrastive alignment of a student to a locked (detached) teacher.

    The symmetric InfoNCE of CLIP between student and teacher embeddings of the same samples
    (Zhai et al., CVPR 2022): row ``i`` of the student must pick row ``i`` of the teacher among
    all teacher rows, and vice versa. Only the student receives gradients. Under DDP the rows of
    every process are gathered (with gradients for the student), so the negatives are the
    global batch and the loss equals that of one process holding it.

    Args:
        student: ``[B, D]`` student embeddings (mapped to the teacher's space).
        teacher: ``[B, D]`` teacher embeddings (detached inside).
        mask: ``[B]`` bool, rows where both modalities are present (default: all rows).
        temperature: Softmax temperature ``τ > 0``.
        gather_distributed: Gather rows across processes when a process group is running.

    Returns:
        The loss (a graph-keeping zero with fewer than two rows); ``num_rows`` counts the
        rows of the (global) batch that took part.

    Example:
        >>> z = torch.eye(2)
        >>> round(contrastive_distillation_loss(z, z, temperature=1.0).loss.item(), 4)
        0.3133
    """
    if temperature <= 0:
        raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
    if student.shape != teacher.shape or student.dim() != 2:
        raise ValueError(
            f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings must "
            "both be [B, D] with the same D; map the student to the teacher's space first."
        )
    rows = _rows(mask, student.shape[0], student.device)
    teacher = teacher.detach()
    if gather_distributed:
        student, teacher, rows = (gather_with_grad(t) for t in (student, teacher, rows))
    out = clip_loss(
        {"student": student, "teacher": teacher},
        {"student": rows, "teacher": rows},
        1.0 / temperature,
    )
    count = int(rows.sum())
    return LossOutput(out.loss, {"contrastive": out.loss.detach()}, {"contrastive": count})


@OBJECTIVES.register("feature_distillation")
class FeatureDistillationLoss(nn.Module):
    """Feature regression (cosine or MSE) of a student onto a frozen teacher.

    Args:
        kind: ``"cosine"`` or ``"mse"``.

    Example:
        >>> loss = FeatureDistillationLoss("cosine")
        >>> loss(torch.eye(2), torch.eye(2)).loss.item()
        0.0
    """

    def __init__(self, kind: str = "cosine") -> None:
        super().__init__()
        if kind not in _FEATURE_KINDS:
            raise ValueError(
                f"Unknown feature distillation kind {kind!r}; valid: {_FEATURE_KINDS}."
            )
        self.kind = kind

    @full_precision
    def forward(self, student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> LossOutput:
        """See :func:`feature_distillation_loss`."""
        return feature_distillation_loss(student, teacher, mask, self.kind)


@OBJECTIVES.register("soft_label_distillation")
class SoftLabelDistillationLoss(nn.Module):
    """Knowledge distillation of a teacher's predictions (Hinton et al., 2015).

    Args:
        temperature: Softmax temperature ``T``.

    Example:
        >>> SoftLabelDistillationLoss(2.0)(torch.zeros(3, 4), torch.zeros(3, 4)).loss.item()
        0.0
    """

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        self.temperature = temperature

    @full_precision
    def forward(
        self, student_logits: Tensor, teacher_logits: Tensor, mask: Tensor | None = None
    ) -> LossOutput:
        """See :func:`soft_label_distillation_loss`."""
        return soft_label_distillation_loss(student_logits, teacher_logits, self.temperature, mask)


@OBJECTIVES.register("contrastive_distillation")
class ContrastiveDistillationLoss(nn.Module):
    """LiT-style contrastive alignment of a student to a locked teacher (Zhai et al., 2022).

    Args:
        temperature: Softmax temperature ``τ``.
        gather_distributed: Gather rows across processes (global-batch negatives under DDP).

    Example:
        >>> loss = ContrastiveDistillationLoss(temperature=1.0)
        >>> round(loss(torch.eye(2), torch.eye(2)).loss.item(), 4)  # -log(e / (e + 1))
        0.3133
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"Illegal temperature {temperature}: it must be positive.")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    @full_precision
    def forward(self, student: Tensor, teacher: Tensor, mask: Tensor | None = None) -> LossOutput:
        """See :func:`contrastive_distillation_loss`."""
        return contrastive_distillation_loss(
            student, teacher, mask, self.temperature, self.gather_distributed
        )
