"""Lightning's console chatter, off unless asked for (``--verbose`` / ``MODALAB_VERBOSE=1``).

Every run would otherwise print Lightning's "GPU available / TPU available" lines, a tip about
a cloud logger, the "Loading `train_dataloader`" and "`Trainer.fit` stopped" notices and a
deprecation warning from Lightning's own pytree helper — twelve times in a twelve-run sweep,
none of it about the user's run. Errors and real warnings about the run still print.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["VERBOSE_ENV", "lightning_chatter_off", "verbose"]

#: Environment variable that keeps the chatter (inherited by sweep workers).
VERBOSE_ENV = "MODALAB_VERBOSE"

# Lightning logs its banners and notices at INFO through these loggers.
_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
# Deprecation warnings raised inside Lightning itself (not by modalab or user code).
_LIGHTNING_DEPRECATIONS = (r".*isinstance\(treespec, LeafSpec\).*",)


def verbose() -> bool:
    """Whether the user asked for Lightning's chatter (``MODALAB_VERBOSE`` set and not 0)."""
    return os.environ.get(VERBOSE_ENV, "0") not in ("", "0", "false", "False")


def lightning_chatter_off() -> None:
    """Raise Lightning's info loggers to WARNING and hide its internal deprecation notices.

    Does nothing when :func:`verbose` is true.
    """
    if verbose():
        return
    for name in _INFO_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _LIGHTNING_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message)
