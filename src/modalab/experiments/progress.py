"""Progress bars for sweeps and long analyses (rich), with a quiet mode for CI.

Training progress is Lightning's own bar; this module covers what happens around training:
the runs of a sweep (runs done / total, elapsed, ETA) and long analyses (reports,
counterfactual sweeps). Quiet mode prints nothing; it is on when ``quiet=True`` or when the
environment variable ``MODALAB_QUIET`` is set to ``1``/``true``/``yes``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["ProgressBar", "is_quiet", "progress_bar", "track"]

T = TypeVar("T")


def is_quiet(quiet: bool | None = None) -> bool:
    """``quiet`` if given, else whether ``MODALAB_QUIET`` asks for quiet mode.

    Example:
        >>> is_quiet(True), is_quiet(False)
        (True, False)
    """
    if quiet is not None:
        return quiet
    return os.environ.get("MODALAB_QUIET", "").strip().lower() in ("1", "true", "yes")


class ProgressBar:
    """A handle on one bar: :meth:`advance` after each unit of work.

    Attributes:
        total: Units of work.
        completed: Units done so far.
    """

    def __init__(self, progress: Progress | None, task: TaskID | None, total: int) -> None:
        self._progress = progress
        self._task = task
        self.total = total
        self.completed = 0

    def advance(self, steps: int = 1, description: str | None = None) -> None:
        """Mark ``steps`` more units done, optionally changing the description."""
        self.completed += steps
        if self._progress is not None and self._task is not None:
            if description is not None:
                self._progress.update(self._task, description=description)
            self._progress.advance(self._task, steps)


@contextmanager
def progress_bar(
    total: int, description: str, quiet: bool | None = None, console: Console | None = None
) -> Iterator[ProgressBar]:
    """A progress bar of ``total`` units: description, bar, done/total, elapsed and ETA.

    Args:
        total: Units of work (e.g. runs of a sweep).
        description: Text left of the bar.
        quiet: No output at all (default: the ``MODALAB_QUIET`` environment variable).
        console: Where to draw (default: standard error).

    Example:
        >>> with progress_bar(3, "runs", quiet=True) as bar:
        ...     for _ in range(3):
        ...         bar.advance()
        >>> bar.completed
        3
    """
    if total < 0:
        raise ValueError(f"total={total} must be non-negative.")
    if is_quiet(quiet):
        yield ProgressBar(None, None, total)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)
        yield ProgressBar(progress, task, total)


def track(
    items: Iterable[T],
    description: str,
    total: int | None = None,
    quiet: bool | None = None,
    console: Console | None = None,
) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (see :func:`progress_bar`).

    Example:
        >>> list(track([1, 2, 3], "analysis", quiet=True))
        [1, 2, 3]
    """
    sized = list(items) if total is None else items
    count = len(sized) if total is None else total  # type: ignore[arg-type]
    with progress_bar(count, description, quiet=quiet, console=console) as bar:
        for item in sized:
            yield item
            bar.advance()
