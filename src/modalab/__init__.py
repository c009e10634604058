"""modalab: self-supervised multimodal representation learning under adverse conditions."""

import os
import sys
from importlib.metadata import PackageNotFoundError, version

#: Whether torch was imported before modalab (then the wait policy below is not in effect).
TORCH_LOADED_BEFORE_MODALAB = "torch" in sys.modules
#: Busy-wait iterations of a waiting OpenMP thread before it sleeps (libgomp's GOMP_SPINCOUNT).
DEFAULT_SPINCOUNT = "10000"
# A waiting OpenMP thread spins briefly, then sleeps: OpenMP's default (300,000 spins) stalls
# every step on a busy machine, a passive wait (no spin) costs ~20 % on an idle one (see
# modalab.experiments.threads). Read once, when torch loads OpenMP; a user's setting is kept.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = DEFAULT_SPINCOUNT

try:
    __version__ = version("modalab")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["DEFAULT_SPINCOUNT", "TORCH_LOADED_BEFORE_MODALAB", "__version__"]
