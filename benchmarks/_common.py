"""Helpers shared by the benchmark scripts (not part of the library)."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from modalab.data.batch import MultimodalBatch


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
