"""The method registry: name → builder of a LightningModule recipe."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor

from modalab.data.batch import MultimodalBatch
from modalab.registry import Registry

__all__ = [
    "LABEL_FREE_METHODS",
    "METHODS",
    "SHARED_ARGS",
    "MethodRegistry",
    "RepresentationLearner",
    "complete_args",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Methods whose training reads no label (``label``, ``label_observed``): the same data under
#: a label scenario trains the same model (``tests/test_ssl_methods.py`` checks each loss's
#: invariance to the labels). Their probes, fitted after training, do read labels.
LABEL_FREE_METHODS = frozenset(
    {
        "barlow",
        "byol",
        "clip",
        "clip_rince",
        "coca",
        "fusion",
        "masked",
        "moco",
        "simclr",
        "simsiam",
        "slip",
        "vicreg",
    }
)

#: What the parameters many method builders share mean. A builder's ``Args:`` section
#: documents its own parameters; a parameter it leaves out that is named here gets this
#: description when the builder is registered (:func:`complete_args`), so each meaning is
#: written once. A builder whose parameter means something else documents it itself.
SHARED_ARGS: dict[str, str] = {
    "encoder": "Per-modality encoders (projection heads are added here).",
    "num_classes": "Number of classes of the data (unused: self-supervised).",
    "embed_dim": "Output size of the encoders.",
    "example": "A training batch, to choose each modality's default augmentations.",
    "seed": "Seed of the augmentations' random state.",
    "modality": '``""``: across every pair of modalities; a modality: two augmented views of it.',
    "proj_dim": "Output size of the projection head.",
    "proj_hidden": "Hidden width of the two-layer projection head (0: linear).",
    "augment": "Augment each view with the modality's default augmentations.",
    "lr": "Peak AdamW learning rate.",
    "weight_decay": "AdamW weight decay.",
}


def complete_args(builder: F) -> F:
    """Add the :data:`SHARED_ARGS` its docstring leaves out to a builder's ``Args:`` section.

    The added entries go first, in signature order (the shared ones are mostly the context
    arguments, which come first). A ``functools.partial`` (a variant) is returned unchanged:
    its builder was completed when it was registered.

    Example:
        >>> def build(encoder, embed_dim, *, lr: float = 1e-3, depth: int = 2):
        ...     \"\"\"A recipe.
        ...
        ...     Args:
        ...         depth: Layers.
        ...     \"\"\"
        >>> print(complete_args(build).__doc__.split("Args:")[1].rstrip())
        <BLANKLINE>
                encoder: Per-modality encoders (projection heads are added here).
                embed_dim: Output size of the encoders.
                lr: Peak AdamW learning rate.
                depth: Layers.
    """
    if not inspect.isfunction(builder):
        return builder
    doc = builder.__doc__ or ""
    documented = set(re.findall(r"^\s+(\w+): ", doc, re.M))
    missing = [
        f"        {name}: {SHARED_ARGS[name]}\n"
        for name in inspect.signature(builder).parameters
        if name in SHARED_ARGS and name not in documented
    ]
    if missing and "    Args:\n" in doc:
        head, tail = doc.split("    Args:\n", 1)
        builder.__doc__ = head + "    Args:\n" + "".join(missing) + tail
    elif missing:
        builder.__doc__ = doc.rstrip() + "\n\n    Args:\n" + "".join(missing) + "    "
    return builder


class MethodRegistry(Registry[Callable[..., Any]]):
    """The registry of method builders: registering completes a builder's ``Args:``."""

    def prepare(self, obj: Callable[..., Any]) -> Callable[..., Any]:
        """The builder with the shared parameters' descriptions added (:func:`complete_args`)."""
        return complete_args(obj)


@runtime_checkable
class RepresentationLearner(Protocol):
    """What the evaluator needs of a trained method."""

    def representations(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """Per-modality representations ``{modality: [B, D]}`` (evaluated downstream)."""
        ...

    def joint_embeddings(self, representations: dict[str, Tensor]) -> dict[str, Tensor]:
        """The representations mapped into the joint space used for cross-modal retrieval."""
        ...


#: Method builders ``(encoder, num_classes, embed_dim, [example, data_info, seed], *,
#: **hyperparameters) -> LightningModule``; the encoder is a
#: :class:`~modalab.models.MultimodalEncoder` without projection heads. The keyword-only
#: hyperparameters (defaults, ``Args:`` docstring) are the config of ``method=<name>``.
METHODS = MethodRegistry("method")
