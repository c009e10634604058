"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from modalab.data.batch import MultimodalBatch
from modalab.methods.registry import METHODS
from modalab.models.multimodal import MultimodalEncoder


def timeit(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def method_and_optimizer(
    method: str, encoders: torch.nn.ModuleDict, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A registered method on ``encoders`` (10 classes, ``embed_dim`` 128) and its AdamW, for
    timing steps outside a Trainer (``log`` is a no-op)."""
    built = METHODS.get(method)(MultimodalEncoder(encoders), num_classes=10, embed_dim=128)
    built = built.to(device)
    built.log = lambda *a, **k: None  # type: ignore[method-assign]  # no Trainer here
    return built, torch.optim.AdamW(built.parameters(), lr=2e-3, weight_decay=1e-4)


def random_batch(shapes: Mapping[str, Sequence[int]], size: int) -> MultimodalBatch:
    """A seeded batch of ``size`` random inputs per modality, all present, 10 classes."""
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(size, *s, generator=g) for m, s in shapes.items()}
    ones = torch.ones(size, dtype=torch.bool)
    label = torch.randint(10, (size,), generator=g)
    return MultimodalBatch(
        inputs=inputs,
        present={m: ones for m in shapes},
        label=label,
        label_observed=ones,
        clean_label=label,
        index=torch.arange(size),
    )


class AllocatorWorkers:
    """One worker process per ``trainer.allocator`` setting, timing steps on request.

    ``mallopt`` settings are global to a process and glibc's defaults (a dynamic mmap
    threshold) cannot be restored exactly once changed, so each setting gets its own process,
    started with ``script --worker ALLOCATOR *args``; the parent asks them for one timed step
    at a time, so that the settings interleave round after round like any other variant.
    The script's worker mode calls :func:`serve_steps`.
    """

    def __init__(self, script: str, allocators: Sequence[str], args: Sequence[str]) -> None:
        import subprocess
        import sys

        self.workers = {
            allocator: subprocess.Popen(
                [sys.executable, script, "--worker", allocator, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for allocator in allocators
        }
        self.ready = {a: self._read(a) for a in allocators}  # what each worker has in effect

    def _read(self, allocator: str) -> str:
        stdout = self.workers[allocator].stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the {allocator} worker exited; see its error above")
        return line.strip()

    def step(self, allocator: str, variant: str) -> float:
        """One timed step of ``variant`` in the ``allocator`` worker, in seconds."""
        stdin = self.workers[allocator].stdin
        assert stdin is not None
        stdin.write(variant + "\n")
        stdin.flush()
        return float(self._read(allocator))

    def close(self) -> None:
        """Stop the workers."""
        for process in self.workers.values():
            if process.stdin is not None:
                process.stdin.close()
            process.wait(timeout=60)


def serve_steps(allocator: str, steps: Mapping[str, Callable[[], float]]) -> None:
    """Worker side of :class:`AllocatorWorkers`: apply ``allocator``, then time steps by name."""
    import sys

    from modalab.experiments.allocator import set_allocator

    print(set_allocator(allocator), flush=True)
    for line in sys.stdin:
        print(f"{steps[line.strip()]():.6f}", flush=True)
