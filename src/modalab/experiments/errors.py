"""Errors of a run and the command line's error taxonomy (a light module to import).

Every error a user can cause falls in one of three kinds, each with its exit status and a
one-screen message (what is wrong, where, how to fix it); the traceback is shown only with
``modalab --verbose`` or ``HYDRA_FULL_ERROR=1``:

========================  ====  =====================================================
kind                      exit  examples
========================  ====  =====================================================
configuration error       2     unknown key, value out of range, impossible scenario
data error                3     missing/corrupt/duplicated file, refused unsafe file
environment error         4     no GPU for ``trainer.accelerator=gpu``, unwritable folder
========================  ====  =====================================================

A stopped run exits ``128 + signal`` (:class:`RunInterrupted`), a failed training 1.
"""

from __future__ import annotations

import os
import pickle
import sys
from dataclasses import dataclass

from modalab.errors import DataError  # raised in the data layer too

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DATA",
    "EXIT_ENVIRONMENT",
    "ConfigError",
    "DataError",
    "EnvironmentProblem",
    "Explained",
    "RunInterrupted",
    "TrainingError",
    "explain_error",
    "show_traceback",
]

#: Exit status of a configuration error.
EXIT_CONFIG = 2
#: Exit status of a data error (a file missing, corrupt, duplicated, unsafe).
EXIT_DATA = 3
#: Exit status of an environment error (no GPU, unwritable folder).
EXIT_ENVIRONMENT = 4


class ConfigError(ValueError):
    """A configuration that cannot be composed or is invalid; the message says how to fix it."""


class TrainingError(RuntimeError):
    """Training failed (e.g. a non-finite loss); the message says what was kept and what to do."""


class RunInterrupted(TrainingError):
    """The run was stopped by SIGTERM or SIGINT; its last checkpoint is kept for ``resume=true``.

    Attributes:
        signal_number: The signal that stopped it (for the process exit status ``128 + n``).
    """

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.signal_number = signal_number

    def __reduce__(self) -> tuple[type[RunInterrupted], tuple[str, int]]:
        """Pickle with both arguments (a sweep's worker process sends it to the parent)."""
        return (type(self), (str(self), self.signal_number))


class EnvironmentProblem(RuntimeError):
    """The machine cannot run the configuration (no GPU, an unwritable folder)."""


@dataclass(frozen=True)
class Explained:
    """An error as the command line shows it.

    Attributes:
        code: The process exit status.
        message: One screen: the kind, what is wrong and how to fix it.
    """

    code: int
    message: str


def _first_lines(text: str, limit: int = 24) -> str:
    """At most ``limit`` lines: the head (what is wrong) and the tail (how to fix it)."""
    lines = text.strip().splitlines()
    if len(lines) <= limit:
        return "\n".join(lines)
    head, tail = limit * 2 // 3, limit - limit * 2 // 3 - 1
    skipped = len(lines) - head - tail
    return "\n".join([*lines[:head], f"  ... ({skipped} more lines)", *lines[-tail:]])


def explain_error(error: BaseException) -> Explained | None:
    """The exit status and message of a user-caused error, or ``None`` for a bug.

    Example:
        >>> explain_error(DataError("x.npz: labels [7] outside 0..1")).code
        3
        >>> explain_error(KeyError("a bug")) is None
        True
    """
    data_errors: tuple[type[BaseException], ...] = (DataError, pickle.UnpicklingError)
    try:
        from modalab.data.files import CorruptDataError, MissingDataError

        data_errors += (MissingDataError, CorruptDataError)
    except ImportError:  # pragma: no cover
        pass
    try:
        import yaml

        data_errors += (yaml.constructor.ConstructorError,)
    except ImportError:  # pragma: no cover
        pass
    checkpoint = sys.modules.get("modalab.experiments.checkpoint")  # never import torch here
    if checkpoint is not None:
        data_errors += (checkpoint.UntrustedCheckpointError,)
    if isinstance(error, ConfigError):
        return Explained(EXIT_CONFIG, f"modalab: configuration error: {_first_lines(str(error))}")
    if isinstance(error, data_errors):
        what = str(error)
        if isinstance(error, pickle.UnpicklingError):
            what = f"refused to unpickle an unsafe or corrupt file: {what}"
        elif type(error).__module__.startswith("yaml"):
            what = f"refused an unsafe YAML file (object construction is never allowed): {what}"
        return Explained(EXIT_DATA, f"modalab: data error: {_first_lines(what)}")
    if isinstance(error, EnvironmentProblem):
        message = f"modalab: environment error: {_first_lines(str(error))}"
        return Explained(EXIT_ENVIRONMENT, message)
    if isinstance(error, PermissionError):
        return Explained(
            EXIT_ENVIRONMENT,
            f"modalab: environment error: cannot write {error.filename or ''}: {error.strerror}. "
            "Choose a writable folder (output_dir=, store=) or fix its permissions.",
        )
    return None


def show_traceback() -> bool:
    """Whether the user asked for full tracebacks (``--verbose`` or ``HYDRA_FULL_ERROR=1``)."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("MODALAB_VERBOSE") == "1"
