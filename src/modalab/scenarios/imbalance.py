"""Unbalanced modalities: one modality at a lower resolution.

The other faces of imbalance are compositions of existing parts: *less data* for a modality
is :class:`~modalab.scenarios.missing.MissingModality` on that modality alone, *lower signal*
is :class:`~modalab.scenarios.noise.GaussianNoise` on it, and a *weaker encoder* is a model
choice (``model.encoders.audio=mlp``). Per-modality probes then show the modality competition
(Wang, Tran & Feiszli, "What Makes Training Multi-Modal Classification Networks Hard?",
CVPR 2020; Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation",
CVPR 2022).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from modalab.data.tensor_dataset import MultimodalTensorDataset
from modalab.scenarios.base import Scenario, check_modalities
from modalab.scenarios.registry import SCENARIOS

__all__ = ["Downsample"]


@SCENARIOS.register("downsample")
@dataclass
class Downsample(Scenario):
    """Lower resolution: area-downsample by ``factor``, then upsample back to the input size.

    Images ``[N, C, H, W]`` are area-averaged to ``H / factor × W / factor`` and brought back
    with bilinear interpolation; 1-D signals ``[N, C, T]`` likewise with linear interpolation
    (the area average is the anti-aliasing low-pass). Shapes are unchanged, so encoders need
    no change; the information above the new Nyquist limit is gone.

    Attributes:
        factor: Downsampling factor ``>= 1`` (the severity; 1 is the clean data).
        modalities: Modalities to downsample (float, ``[N, C, H, W]`` or ``[N, C, T]``).

    Example:
        >>> from modalab.data import MultimodalTensorDataset
        >>> x = torch.arange(16.0).view(1, 1, 4, 4)
        >>> ds = MultimodalTensorDataset({"image": x}, torch.zeros(1).long())
        >>> out = Downsample(factor=4.0, modalities=["image"])(ds)
        >>> out.inputs["image"].unique().tolist()  # one 4x4 block: its mean everywhere
        [7.5]
    """

    severity_param = "factor"
    harder = "higher"
    factor: float = 1.0
    modalities: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factor < 1:
            raise ValueError(f"scenario downsample.factor must be >= 1, got {self.factor}.")

    def transform(self, dataset: MultimodalTensorDataset) -> MultimodalTensorDataset:
        """Downsample and upsample back the present rows of each listed modality."""
        if not self.modalities:
            raise ValueError("scenario downsample.modalities must name the modalities to degrade.")
        check_modalities(self.modalities, dataset, "scenario downsample")
        inputs = dict(dataset.inputs)
        for m in self.modalities:
            x = dataset.inputs[m]
            if not x.is_floating_point() or x.dim() not in (3, 4):
                raise ValueError(
                    f"scenario downsample needs float [N, C, H, W] or [N, C, T] inputs; "
                    f"modality {m!r} has dtype {x.dtype} and shape {tuple(x.shape)}."
                )
            if self.factor == 1:
                continue
            size = x.shape[2:]
            small = [max(1, round(s / self.factor)) for s in size]
            low = F.interpolate(x, size=small, mode="area")
            mode = "bilinear" if x.dim() == 4 else "linear"
            up = F.interpolate(low, size=list(size), mode=mode, align_corners=False)
            keep = dataset.present[m].view((-1,) + (1,) * (x.dim() - 1))
            inputs[m] = torch.where(keep, up, x)
        return dataset.replace(inputs=inputs)
