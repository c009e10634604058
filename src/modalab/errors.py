"""Error types raised in every layer (a module with no imports, so that any layer may use it)."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """The data cannot be used as given; the message names the file or split and the fix.

    Duplicates, leakage between splits, labels outside the declared classes, a split too
    small to score. The command line reports it as a data error (exit 3).
    """
