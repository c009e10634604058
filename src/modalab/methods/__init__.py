"""Method recipes: LightningModules that wire encoders, objectives and training tricks."""

from modalab.methods.clip import CLIPMethod, build_clip
from modalab.methods.registry import METHODS
from modalab.methods.supervised import SupervisedFusionMethod, build_supervised

__all__ = ["METHODS", "CLIPMethod", "SupervisedFusionMethod", "build_clip", "build_supervised"]
