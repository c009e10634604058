"""Threads of a run: a count and an OpenMP wait policy that a busy machine cannot stall.

PyTorch's CPU kernels run on an OpenMP pool with one thread per core. A thread that waits for
the others first spins (busy-waits) and then sleeps. With OpenMP's default spin (libgomp:
300,000 iterations) every step stalls on a machine whose cores are busy with other processes;
with no spin at all (``OMP_WAIT_POLICY=PASSIVE``) an idle machine loses about a fifth of its
speed to wake-ups. modalab therefore

* sets ``GOMP_SPINCOUNT=10000`` (a short spin, then sleep; torch's CPU wheels use GNU
  OpenMP) when the ``modalab`` package is imported, unless ``OMP_WAIT_POLICY`` or
  ``GOMP_SPINCOUNT`` is set — the OpenMP runtime reads it once, when torch loads it, so it
  takes effect when ``modalab`` (or its command line) is imported before ``torch``;
* chooses the number of threads of each run (:func:`choose_threads`): ``trainer.threads``
  when set, else ``OMP_NUM_THREADS`` when set (``modalab sweep`` sets it per worker), else
  every core while the 1-minute load average is below ``cpus + 1`` and a bounded wait is in
  effect (passive, or a spin count of at most :data:`BOUNDED_SPIN`), else the number of idle
  cores — the usable CPUs minus the load average, rounded, at least 1 — divided among the
  processes of the run.

Measured side by side in ``benchmarks/bench_threads.py`` (docs/benchmarks.md).

This module does not import torch, so that it can be used before torch loads.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BOUNDED_SPIN",
    "SPINCOUNT_ENV",
    "WAIT_POLICY_ENV",
    "ThreadChoice",
    "apply_threads",
    "auto_threads",
    "available_cpus",
    "bounded_wait",
    "choose_threads",
    "load_average",
]

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPINCOUNT_ENV = "GOMP_SPINCOUNT"
#: The largest spin count treated as a bounded wait by :func:`choose_threads`.
BOUNDED_SPIN = 100_000


@dataclass(frozen=True)
class ThreadChoice:
    """The thread setting of a run, as recorded in its ``metrics.json``.

    Attributes:
        threads: torch intra-op threads of the run.
        source: ``trainer.threads``, ``OMP_NUM_THREADS`` or ``auto`` (from the load).
        cpus: CPUs this process may use.
        load_average: The 1-minute load average when the run started.
        wait_policy: ``OMP_WAIT_POLICY`` as the process sees it, else ``spin N`` for
            ``GOMP_SPINCOUNT=N`` (``""``: neither set, OpenMP's default), with `` (set after
            torch loaded: not in effect)`` when torch was imported before modalab.
    """

    threads: int
    source: str
    cpus: int
    load_average: float
    wait_policy: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dictionary."""
        return asdict(self)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # Windows has no load average
        return 0.0


def auto_threads(cpus: int, load: float, processes: int = 1, passive: bool = False) -> int:
    """Threads per process when ``processes`` processes share the idle cores.

    Idle cores are ``cpus - load`` rounded to the nearest integer, between 1 and ``cpus``.
    With a bounded OpenMP wait in effect (``passive``: no spin, or a short one), a waiting
    thread soon sleeps instead of spinning, so taking a core that is busy costs little; then
    every core is used while the load is below ``cpus + 1`` (an idle machine, or one other busy
    process), and only a more loaded machine falls back to the idle cores. Measured side by side in
    ``benchmarks/bench_threads.py``: on the 2-core machine at load about 2, one thread ran
    the default job at 0.77x the speed of two; under load 10-14, two actively spinning
    threads were 3.3x slower than one.

    Args:
        cpus: Usable CPUs.
        load: The 1-minute load average (runnable processes, ours not yet among them).
        processes: Processes of the run that share the cores (e.g. DDP workers).
        passive: Whether a bounded wait (``OMP_WAIT_POLICY=PASSIVE`` or a short
            ``GOMP_SPINCOUNT``) is in effect in this process.

    Returns:
        At least 1 thread.

    Example:
        >>> auto_threads(2, 0.1), auto_threads(2, 0.9), auto_threads(2, 7.3)
        (2, 1, 1)
        >>> auto_threads(2, 2.1, passive=True), auto_threads(2, 3.2, passive=True)
        (2, 1)
        >>> auto_threads(16, 3.8), auto_threads(16, 0.0, processes=4)
        (12, 4)
    """
    if passive and load < cpus + 1:
        idle = cpus
    else:
        idle = min(cpus, max(1, int(cpus - load + 0.5)))
    return max(1, idle // max(1, processes))


def _env_threads() -> int | None:
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    try:
        count = int(value)
    except ValueError:
        return None
    return count if count >= 1 else None


def _wait_policy() -> str:
    policy = os.environ.get(WAIT_POLICY_ENV, "")
    spin = os.environ.get(SPINCOUNT_ENV, "")
    described = policy or (f"spin {spin}" if spin else "")
    import modalab

    if described and getattr(modalab, "TORCH_LOADED_BEFORE_MODALAB", False):
        return f"{described} (set after torch loaded: not in effect)"
    return described


def bounded_wait(described: str) -> bool:
    """Whether a wait policy from :class:`ThreadChoice` lets a waiting thread sleep soon.

    Example:
        >>> bounded_wait("PASSIVE"), bounded_wait("spin 10000"), bounded_wait("spin 300000")
        (True, True, False)
        >>> bounded_wait(""), bounded_wait("ACTIVE"), bounded_wait("spin INFINITE")
        (False, False, False)
        >>> bounded_wait("spin 10000 (set after torch loaded: not in effect)")
        False
    """
    if "not in effect" in described:
        return False
    if described.upper() == "PASSIVE":
        return True
    count = described.removeprefix("spin ").strip()
    return described.startswith("spin ") and count.isdigit() and int(count) <= BOUNDED_SPIN


def choose_threads(requested: int = 0, processes: int = 1) -> ThreadChoice:
    """The thread count of a run.

    Args:
        requested: ``trainer.threads``; 0 chooses (``OMP_NUM_THREADS`` if set, else
            :func:`auto_threads` from the load average).
        processes: Processes of the run on this machine (each gets its share).

    Returns:
        The choice, with its reason.
    """
    if requested < 0:
        raise ValueError(f"trainer.threads={requested} is invalid: expected 0 (auto) or >= 1.")
    cpus, load = available_cpus(), load_average()
    from_env = _env_threads()
    if requested > 0:
        threads, source = requested, "trainer.threads"
    elif from_env is not None:
        threads, source = from_env, "OMP_NUM_THREADS"
    else:
        passive = bounded_wait(_wait_policy())
        threads, source = auto_threads(cpus, load, processes, passive), "auto"
    return ThreadChoice(threads, source, cpus, round(load, 2), _wait_policy())


def apply_threads(choice: ThreadChoice) -> ThreadChoice:
    """Set torch's intra-op thread count to ``choice.threads`` (for this process)."""
    import torch

    torch.set_num_threads(choice.threads)
    return choice
