"""Start-up time of the command line: `modalab --help`, `list`, `methods` against their targets.

    python benchmarks/bench_startup.py [--repeats 5] [--top 15]

Each command runs in a fresh interpreter (as the console script does) with this tree's
`src/` first on the path; the figure is the median wall time over the repeats. For reference,
the import of the training stack (`modalab.experiments.runner`) is timed the same way, and
`python -X importtime` lists the slowest imports of `modalab list`. Wall times depend on the
load of the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
COMMANDS = {
    "modalab --help": (["--help"], 1.0),
    "modalab list": (["list"], 2.0),
    "modalab methods": (["methods"], 2.0),
}


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC)}


def _code(argv: list[str]) -> str:
    return (
        "import sys\nfrom modalab.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
    )


def _wall(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code], env=_env(), check=True, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _top_imports(code: str, top: int) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports of ``code``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        env=_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} cores")
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}")
    baseline = _wall("import sys", args.repeats)
    runner = _wall("import modalab.experiments.runner", args.repeats)
    print(f"bare interpreter: {baseline:.2f} s; import modalab.experiments.runner: {runner:.2f} s")
    print(f"{'command':<18} {'median s':>9} {'target s':>9}  within")
    for label, (argv, target) in COMMANDS.items():
        wall = _wall(_code(argv), args.repeats)
        print(f"{label:<18} {wall:>9.2f} {target:>9.1f}  {'yes' if wall < target else 'NO'}")
        print(f"  {label} ratio to the runner import: {wall / runner:.2f}")
    print(f"slowest imports of `modalab list` (-X importtime, cumulative, top {args.top}):")
    for micros, name in _top_imports(_code(["list"]), args.top):
        print(f"  {micros / 1e6:8.3f} s  {name}")


if __name__ == "__main__":
    main()
