"""Run every benchmark and write their printed figures into docs/benchmarks.md.

    python benchmarks/run_all.py [--quick]

Each script runs in its own process, one after the other (never in parallel: the figures
are wall times). `--quick` passes smaller sizes, for a smoke check.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "bench_overhead.py": ([], ["--repeats", "1", "--n-samples", "1500"]),
    "bench_data_path.py": ([], ["--n-samples", "2000"]),
    "bench_flops.py": ([], []),
    "bench_eval.py": ([], ["--n", "5000"]),
    "bench_scaling.py": ([], ["--sizes", "1000", "--modalities", "2"]),
    "bench_scenarios.py": ([], ["--n-samples", "2000"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(HERE.parent / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    sections = []
    for script, (full, quick) in SCRIPTS.items():
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / script), *(quick if args.quick else full)],
            capture_output=True,
            text=True,
            cwd=HERE,
            check=True,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        elapsed = time.perf_counter() - start
        print(f"== {script} ({elapsed:.0f}s)\n" + "\n".join(lines), flush=True)
        sections.append((script, lines))
    cpu = platform.processor() or platform.machine()
    header = [
        "# Benchmarks",
        "",
        "Regenerate with `python benchmarks/run_all.py` (each script can also run alone; "
        "see its docstring). Figures are wall times on the machine below, each ratio measured "
        "side by side in one run.",
        "",
        f"- machine: {cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- date: {time.strftime('%Y-%m-%d')}",
        "",
    ]
    body = []
    for script, lines in sections:
        doc = (HERE / script).read_text().split('"""')[1].strip().splitlines()[0]
        body += [f"## `{script}`", "", doc, "", "```text", *lines, "```", ""]
    Path(args.output).write_text("\n".join(header + body))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
