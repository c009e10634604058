"""Cross-modal knowledge distillation: a teacher on the rich modality, a student on the poor one.

The teacher is any module mapping the rich modality to an embedding:

* ``teacher_source="train"`` — trained in-run first, with labels, on the rich modality (a short
  supervised phase of ``teacher_epochs`` epochs), then frozen;
* ``teacher_source="encoder"`` — the rich modality's encoder as the runner built it
  (``model.encoders.<rich>=<name>``, e.g. a pretrained text encoder), frozen and untrained here;
* ``teacher_source="run"`` — the rich modality's encoder of a finished modalab run, loaded from
  its ``model.safetensors`` (``teacher_run=<run dir>``) by the ``load_teacher`` callable that the
  composition root (:mod:`modalab.experiments.build`) passes in; this layer reads no run.

The student (the poor modality's encoder + a small head) is then trained on paired samples,
labels unused, by one of: ``cosine``/``mse`` feature regression onto the teacher embedding
(Gupta, Hoffman & Malik, CVPR 2016), ``contrastive`` alignment to the frozen teacher (LiT:
Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning", CVPR 2022), or ``kd`` —
distillation of the teacher's predictions with a temperature (Hinton, Vinyals & Dean, 2015).
The student is evaluated alone by the standard evaluator (its representation is the student
modality's entry of :meth:`DistillationMethod.representations`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.common import LossStepMethod
from modalab.methods.registry import METHODS
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives.distillation import (
    contrastive_distillation_loss,
    feature_distillation_loss,
    soft_label_distillation_loss,
)
from modalab.objectives.output import LossOutput
from modalab.objectives.supervised import masked_cross_entropy

__all__ = [
    "DISTILL_OBJECTIVES",
    "TEACHER_SOURCES",
    "DistillationMethod",
    "build_distill",
]

DISTILL_OBJECTIVES = ("cosine", "mse", "contrastive", "kd")
TEACHER_SOURCES = ("train", "encoder", "run")


class DistillationMethod(LossStepMethod):
    """Teacher (rich modality) → student (poor modality) distillation on paired data.

    Args:
        teacher: Module mapping the rich modality's input to ``[B, teacher_dim]``.
        student: Module mapping the poor modality's input to ``[B, embed_dim]``.
        teacher_modality: Name of the rich modality.
        student_modality: Name of the poor modality.
        num_classes: Number of classes.
        embed_dim: Student embedding size.
        teacher_dim: Teacher embedding size.
        objective: ``"cosine"``, ``"mse"``, ``"contrastive"`` or ``"kd"``.
        teacher_epochs: Epochs of the supervised teacher phase (0: the teacher is given).
        temperature: Temperature of ``kd`` and ``contrastive``.
        teacher_head: Teacher's classifier (needed by ``kd`` and by the teacher phase).
        lr: Learning rate.
        weight_decay: Weight decay.
    """

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module,
        teacher_modality: str,
        student_modality: str,
        num_classes: int,
        embed_dim: int,
        teacher_dim: int,
        objective: str = "cosine",
        teacher_epochs: int = 0,
        temperature: float = 4.0,
        teacher_head: nn.Module | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        if objective not in DISTILL_OBJECTIVES:
            raise ValueError(
                f"method.objective={objective!r} is unknown; valid: {list(DISTILL_OBJECTIVES)}."
            )
        if temperature <= 0:
            raise ValueError(f"method.temperature={temperature} must be positive.")
        if teacher_modality == student_modality:
            raise ValueError("method.teacher_modality and method.student_modality must differ.")
        if (objective == "kd" or teacher_epochs > 0) and teacher_head is None:
            raise ValueError(
                "method.objective=kd and a teacher phase need a teacher classifier; use "
                "method.teacher_source=train."
            )
        self.teacher = teacher
        self.student = student
        self.teacher_modality, self.student_modality = teacher_modality, student_modality
        self.objective = objective
        self.teacher_epochs = teacher_epochs
        self.temperature = temperature
        self.teacher_head = teacher_head
        out_dim = num_classes if objective == "kd" else teacher_dim
        self.student_head = nn.Sequential(
            nn.Linear(embed_dim, embed_dim), nn.ReLU(), nn.Linear(embed_dim, out_dim)
        )
        self.lr, self.weight_decay = lr, weight_decay
        if teacher_epochs == 0:
            self._freeze_teacher()

    def _freeze_teacher(self) -> None:
        for module in (self.teacher, self.teacher_head):
            if module is not None:
                module.requires_grad_(False)

    @property
    def in_teacher_phase(self) -> bool:
        """Whether the current epoch trains the teacher (supervised) rather than the student."""
        return int(self.current_epoch) < self.teacher_epochs

    @property
    def selection_start_epoch(self) -> int:
        """The first student epoch, from which validation selects checkpoints.

        The teacher phase's validation loss is the teacher's cross-entropy, not comparable
        with the student's distillation loss, so neither the best checkpoint nor early
        stopping may count it (they would keep an untrained student).
        """
        return self.teacher_epochs

    def on_fit_start(self) -> None:
        """Check that epochs remain for the student after the teacher phase."""
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and 0 <= max_epochs <= self.teacher_epochs:
            raise ValueError(
                f"trainer.max_epochs={max_epochs} leaves no epoch for the student after "
                f"method.teacher_epochs={self.teacher_epochs}; raise max_epochs."
            )

    def on_train_epoch_start(self) -> None:
        """Freeze the teacher when its phase ends."""
        if self.current_epoch >= self.teacher_epochs:
            self._freeze_teacher()

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """The student's and the teacher's representations (the student is evaluated alone)."""
        return {
            self.student_modality: self.student(batch.inputs[self.student_modality]),
            self.teacher_modality: self.teacher(batch.inputs[self.teacher_modality]),
        }

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """Student mapped into the teacher's space, and the teacher, L2-normalised."""
        student = representations[self.student_modality]
        teacher = representations[self.teacher_modality]
        if self.objective == "kd":
            return {}
        return {
            self.student_modality: F.normalize(self.student_head(student), dim=-1),
            self.teacher_modality: F.normalize(teacher, dim=-1),
        }

    def _teacher_step(self, batch: MultimodalBatch) -> LossOutput:
        assert self.teacher_head is not None
        rows = batch.label_observed & batch.present[self.teacher_modality]
        logits = self.teacher_head(self.teacher(batch.inputs[self.teacher_modality]))
        loss = masked_cross_entropy(logits, batch.label, rows)
        accuracy = (logits.argmax(1) == batch.clean_label)[rows].float().mean()
        terms = {"teacher_ce": loss.detach(), "teacher_acc": accuracy}
        return LossOutput(loss, terms, {"teacher_ce": int(rows.sum())})

    def distillation_loss(self, batch: MultimodalBatch) -> LossOutput:
        """The student's loss on a batch (rows with both modalities present)."""
        rows = batch.present[self.teacher_modality] & batch.present[self.student_modality]
        self.teacher.eval()
        if self.teacher_head is not None:
            self.teacher_head.eval()
        with torch.no_grad():
            target = self.teacher(batch.inputs[self.teacher_modality])
        student = self.student_head(self.student(batch.inputs[self.student_modality]))
        if self.objective in ("cosine", "mse"):
            return feature_distillation_loss(student, target, rows, self.objective)
        if self.objective == "kd":
            assert self.teacher_head is not None
            with torch.no_grad():
                teacher_logits = self.teacher_head(target)
            return soft_label_distillation_loss(student, teacher_logits, self.temperature, rows)
        return contrastive_distillation_loss(student, target, rows, self.temperature)

    def step_loss(self, batch: MultimodalBatch, stage: str) -> LossOutput:
        """Teacher phase: supervised CE on the rich modality; then distillation."""
        return self._teacher_step(batch) if self.in_teacher_phase else self.distillation_loss(batch)


@METHODS.register("distill")
def build_distill(
    encoder: MultimodalEncoder,
    num_classes: int,
    embed_dim: int,
    load_teacher: Callable[[str, str], tuple[nn.Module, int]] | None = None,
    *,
    teacher_modality: str = "image",
    student_modality: str = "audio",
    teacher_source: str = "train",
    teacher_run: str = "",
    teacher_dim: int = 0,
    teacher_epochs: int = 3,
    objective: str = "cosine",
    temperature: float = 4.0,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
) -> DistillationMethod:
    """Cross-modal distillation from a rich-modality teacher to a poor-modality student.

    ``teacher_modality`` may list modalities in order of preference, separated by ``|``: the
    first the data has is the teacher. An empty ``student_modality`` means the data's other
    modality (the data must then have exactly two). So one study distils text → image on
    ``shapes`` with ``data.modalities=[text,image]`` and image → audio on AV-MNIST, with
    ``method.teacher_modality='text|image' method.student_modality=''``.

    Args:
        encoder: Per-modality encoders (the student's is trained).
        num_classes: Number of classes (of the in-run teacher and of ``kd``).
        load_teacher: Maps ``(teacher_run, teacher_modality)`` to the trained encoder of that
            modality and its embedding size (a context argument, not a config key); the
            composition root passes :func:`modalab.experiments.rundir.load_teacher`.
        teacher_modality: The rich modality; ``a|b``: the first of them the data has.
        student_modality: The poor modality, evaluated alone; ``""``: the data's other one.
        teacher_source: ``train``: a supervised teacher phase in this run; ``encoder``: the
            teacher's encoder as built; ``run``: the encoder of the finished ``teacher_run``.
        teacher_run: Run directory of a finished run (``teacher_source=run``).
        teacher_dim: Teacher embedding size; 0: ``embed_dim``.
        teacher_epochs: Supervised teacher epochs before distillation (``teacher_source=train``).
        objective: ``cosine`` | ``mse`` (features), ``contrastive`` (LiT) or ``kd`` (soft labels).
        temperature: Temperature of ``kd`` and of ``contrastive`` (use ~0.1 there).
    """
    names = list(encoder.modalities)
    preferred = [m for m in teacher_modality.split("|") if m in names]
    if "|" in teacher_modality:
        if not preferred:
            raise ValueError(
                f"method.teacher_modality={teacher_modality!r} names none of the data's "
                f"modalities {names}."
            )
        teacher_modality = preferred[0]
    if not student_modality:
        others = [m for m in names if m != teacher_modality]
        if len(names) != 2 or len(others) != 1:
            raise ValueError(
                "An empty method.student_modality means the data's other modality: it needs "
                f"data with exactly two modalities, one of them the teacher; got {names}."
            )
        student_modality = others[0]
    for role, name in (("teacher", teacher_modality), ("student", student_modality)):
        if name not in encoder.modalities:
            raise ValueError(
                f"method.{role}_modality={name!r} is not a modality of the data "
                f"{list(encoder.modalities)}."
            )
    if teacher_source not in TEACHER_SOURCES:
        raise ValueError(
            f"method.teacher_source={teacher_source!r} is unknown; valid: {list(TEACHER_SOURCES)}."
        )
    teacher_head: nn.Module | None = None
    if teacher_source == "run":
        if not teacher_run:
            raise ValueError("method.teacher_source=run needs method.teacher_run=<run directory>.")
        if load_teacher is None:
            raise ValueError(
                "method.teacher_source=run needs a teacher loader: build the method with "
                "modalab.experiments.build.build_method(..., load_teacher=...)."
            )
        teacher, dim = load_teacher(teacher_run, teacher_modality)
        teacher_epochs = 0
    else:
        if teacher_run:
            raise ValueError("method.teacher_run is only used with method.teacher_source=run.")
        teacher = encoder.encoders[teacher_modality]
        dim = teacher_dim or embed_dim
        if teacher_source == "train":
            if teacher_epochs < 1:
                raise ValueError("method.teacher_source=train needs method.teacher_epochs >= 1.")
            teacher_head = nn.Linear(dim, num_classes)
        else:
            teacher_epochs = 0
    if teacher_dim and teacher_dim != dim:
        raise ValueError(
            f"method.teacher_dim={teacher_dim} disagrees with the loaded teacher's dimension {dim}."
        )
    if objective == "kd" and teacher_head is None:
        raise ValueError(
            "method.objective=kd distils the teacher's predictions: it needs "
            "method.teacher_source=train (a teacher with a classifier)."
        )
    return DistillationMethod(
        teacher=teacher,
        student=encoder.encoders[student_modality],
        teacher_modality=teacher_modality,
        student_modality=student_modality,
        num_classes=num_classes,
        embed_dim=embed_dim,
        teacher_dim=dim,
        objective=objective,
        teacher_epochs=teacher_epochs,
        temperature=temperature,
        teacher_head=teacher_head,
        lr=lr,
        weight_decay=weight_decay,
    )
