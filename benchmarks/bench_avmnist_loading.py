"""AV-MNIST build and load cost: first build, cached load, batching; peak memory; cache size.

Each phase runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
Prints the machine's load average, since the figures depend on it.

    MODALAB_DATA=../shared/data python benchmarks/bench_avmnist_loading.py \
        [--max-images N] [--protocol multibench|clean]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue as queues
import resource
import sys
import tempfile
import time


def _phase(kind: str, cache_dir: str, max_images: int, protocol: str, queue: mp.Queue) -> None:
    try:
        _measure(kind, cache_dir, max_images, protocol, queue)
    except BaseException as error:  # the parent waits on the queue: always answer it
        queue.put({"error": f"{type(error).__name__}: {error}"})
        raise


def _measure(kind: str, cache_dir: str, max_images: int, protocol: str, queue: mp.Queue) -> None:
    import torch

    from modalab.data.avmnist import make_avmnist
    from modalab.data.tensor_dataset import make_loader

    torch.set_num_threads(1)
    start = time.perf_counter()
    splits = make_avmnist(cache_dir=cache_dir, max_images=max_images, protocol=protocol)
    seconds = time.perf_counter() - start
    n = len(splits.train) + len(splits.val) + len(splits.test)
    result = {
        "phase": kind,
        "samples": n,
        "seconds": seconds,
        "from_cache": splits.info.extra["from_cache"],
        "sizes": {s: len(getattr(splits, s)) for s in ("train", "val", "test")},
        "cache_mib": splits.info.extra["cache_bytes"] / 2**20,
        "unique_audio": splits.info.extra["unique_audio"],
        "skipped": (splits.info.skipped or {}).get("count", 0),
    }
    if kind == "cached":
        start = time.perf_counter()
        seen = 0
        for batch in make_loader(splits.train, 256, shuffle=True, seed=0):
            seen += batch.batch_size
        result["batch_samples_per_s"] = seen / (time.perf_counter() - start)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def _answer(queue: mp.Queue, process: mp.process.BaseProcess) -> dict:
    """The phase's result, or its error; never waits on a process that died without one."""
    while True:
        try:
            return queue.get(timeout=1.0)
        except queues.Empty:
            if not process.is_alive():
                return {"error": f"the measuring process exited with code {process.exitcode}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-images", type=int, default=0)
    parser.add_argument("--protocol", default="multibench")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    context = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as cache_dir:
        for kind in ("first build", "cached"):
            queue: mp.Queue = context.Queue()
            process = context.Process(
                target=_phase, args=(kind, cache_dir, args.max_images, args.protocol, queue)
            )
            process.start()
            result = _answer(queue, process)
            process.join()
            if "error" in result:
                raise SystemExit(f"{kind} failed: {result['error']}")
            rate = result["samples"] / result["seconds"]
            line = (
                f"{kind:12s}: {result['samples']} samples in {result['seconds']:.2f} s = "
                f"{rate:,.0f} samples/s (from_cache={result['from_cache']}), "
                f"peak RSS {result['peak_rss_mib']:.0f} MiB, cache {result['cache_mib']:.0f} MiB "
                f"({result['unique_audio']} unique spectrograms, {result['skipped']} skipped)"
            )
            if "batch_samples_per_s" in result:
                line += (
                    f"; one epoch of train batches: {result['batch_samples_per_s']:,.0f} samples/s"
                )
            print(line, flush=True)
        print("split sizes:", json.dumps(result["sizes"]))
    print(f"load average after: {os.getloadavg()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
