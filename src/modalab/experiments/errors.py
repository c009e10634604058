"""Errors of a run that the command line turns into exit statuses (a light module to import)."""

from __future__ import annotations

__all__ = ["ConfigError", "RunInterrupted", "TrainingError"]


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
