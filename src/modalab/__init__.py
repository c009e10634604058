"""modalab: self-supervised multimodal representation learning under adverse conditions."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

#: Whether torch was imported before modalab (then the wait policy below is not in effect).
TORCH_LOADED_BEFORE_MODALAB = "torch" in sys.modules
# Idle OpenMP threads sleep instead of spinning for a core: on a busy machine spinning threads
# stall every step (see modalab.experiments.threads). Read once, when torch loads OpenMP.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

try:
    __version__ = version("modalab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["TORCH_LOADED_BEFORE_MODALAB", "__version__"]
