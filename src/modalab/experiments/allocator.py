"""The C allocator of a run: keep freed memory for reuse instead of returning it to the system.

PyTorch's CPU tensors come from the C library's ``malloc``. GNU libc serves every block over
its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on ``free``, and it
returns the top of its heap to the system once more than 128 KiB is free there. A training
step allocates and frees the same large activation buffers every step (a ``[256, 6, 112,
112]`` float map is 77 MB), so each step pays the page faults of touching new memory again:
measured on the AV-MNIST LeNet step (2-core machine, ``benchmarks/bench_avmnist_encoders.py``)
an element-wise op on such a map took 23.5 ms with the default and 4.5 ms with freed memory
kept for reuse. Intel's tuning guide for PyTorch on CPU (intel-extension-for-pytorch,
``tutorials/performance_tuning/tuning_guide.md``, section "Memory Allocator") treats the
allocator as a tuning knob for this reason, with jemalloc or TCMalloc preloaded;
:func:`reuse_freed_memory` gets the effect from glibc itself, with ``mallopt``: no ``mmap``
for large blocks (``M_MMAP_MAX=0``) and no trimming of the heap's top (``M_TRIM_THRESHOLD``
at its maximum).

The cost: the heap keeps its freed blocks, so a phase of other block sizes (evaluation after
training) would add to it; after training the runner calls :func:`release_freed_memory`,
which returns the free pages and maps the largest blocks again for the evaluation.
``trainer.allocator=system`` leaves the C library's defaults; the choice is how fast, not
what, so it is not part of a run's identity.
Environment settings win: with ``MALLOC_MMAP_MAX_``, ``MALLOC_TRIM_THRESHOLD_`` or
``MALLOC_MMAP_THRESHOLD_`` set, or another allocator preloaded (``LD_PRELOAD``), nothing is
changed. Outside GNU libc (macOS, musl, Windows) nothing is changed either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = [
    "ALLOCATORS",
    "ENV_SETTINGS",
    "release_freed_memory",
    "reuse_freed_memory",
    "set_allocator",
]

#: The values of ``trainer.allocator``.
ALLOCATORS = ("reuse", "system")
#: Environment variables that set glibc's malloc; any of them set leaves malloc alone.
ENV_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

# <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
#: glibc's largest mmap threshold on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX).
_MMAP_THRESHOLD_MAX = 32 * 2**20
#: glibc's defaults (DEFAULT_MMAP_MAX; DEFAULT_MMAP_THRESHOLD_MIN = DEFAULT_TRIM_THRESHOLD).
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_THRESHOLD = 128 * 1024
_INT_MAX = 2**31 - 1

_state = {"reuse": False}


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (absent outside GNU libc)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory() -> str:
    """Keep freed memory in the process for reuse (see the module docstring).

    Applied again at the start of every run of a process: the previous run's
    :func:`release_freed_memory` mapped large blocks again for its evaluation.

    Returns:
        What is in effect, for a run's ``metrics.json``: ``"reuse"``, or ``"system (why)"``
        when nothing was changed.
    """
    preset = [name for name in ENV_SETTINGS if name in os.environ]
    if preset:
        return f"system ({', '.join(preset)} set)"
    if os.environ.get("LD_PRELOAD", "").strip():
        return "system (LD_PRELOAD set)"
    libc = _glibc()
    if libc is None:
        return "system (not GNU libc)"
    if not (libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX)):
        return "system (mallopt refused)"
    _state["reuse"] = True
    return "reuse"


def release_freed_memory() -> None:
    """End of the training phase under ``reuse``: return free pages, map the largest blocks.

    Called by the runner after training, before evaluation: ``malloc_trim(0)`` returns the
    free pages of the heap (the blocks kept for the training steps), and from then on blocks
    over 32 MiB (glibc's largest mmap threshold) are mapped and unmapped again. Evaluation
    allocates blocks of many sizes once each (feature extraction at another batch size,
    probes, retrieval); kept on the heap they added about 0.5 GB to the peak of an AV-MNIST
    evaluation (2,521 vs 1,979 MiB measured side by side), for little speed. Smaller blocks are
    still kept. A no-op when ``reuse`` is not in effect.
    """
    libc = _glibc() if _state["reuse"] else None
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.malloc_trim(0)


def _restore_defaults() -> None:
    """Restore glibc's documented defaults (mmap for large blocks, trim above 128 KiB)."""
    libc = _glibc() if _state["reuse"] else None
    release_freed_memory()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
    _state["reuse"] = False


def set_allocator(choice: str) -> str:
    """Apply ``trainer.allocator`` (``reuse`` or ``system``); returns what is in effect.

    ``system`` after ``reuse`` in one process (e.g. two runs from one Python session)
    restores glibc's default thresholds.

    Example:
        >>> set_allocator("system")
        'system'
        >>> set_allocator("fast")
        Traceback (most recent call last):
        ...
        ValueError: trainer.allocator='fast': use one of reuse, system.
    """
    if choice not in ALLOCATORS:
        raise ValueError(f"trainer.allocator={choice!r}: use one of {', '.join(ALLOCATORS)}.")
    if choice == "reuse":
        return reuse_freed_memory()
    _restore_defaults()
    return "system"
