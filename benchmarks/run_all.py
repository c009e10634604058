"""Run every benchmark and write their printed figures into docs/benchmarks.md.

    python benchmarks/run_all.py [--quick]

Each script runs in its own process, one after the other (never in parallel: the figures
are wall times). `--quick` passes smaller sizes, for a smoke check.
"""

from __future__ import annotations

import argparse
import os
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
    "bench_counterfactual.py": ([], ["--n-samples", "2000"]),
    "bench_threads.py": ([], ["--repeats", "1"]),
    "bench_startup.py": ([], ["--repeats", "1"]),
}
#: Printed lines that carry a benchmark's headline figure (copied into the summary table).
HEADLINES = ("speed-up", "ratio", "efficiency", "peak memory", "R@1", "samples/s")


def _headline(script: str, lines: list[str]) -> str:
    if script == "bench_scaling.py":  # a table: first and last row
        rows = [ln.split() for ln in lines if ln.strip()[:1].isdigit() and len(ln.split()) == 6]
        return "; ".join(
            f"N={r[0]}, {r[1]} modalities: epoch {r[3]} s, eval {r[4]} s, {r[5]} MiB" for r in rows
        )
    if script == "bench_scenarios.py":
        rows = [ln.split() for ln in lines if len(ln.split()) == 3 and ln.split()[1][0].isdigit()]
        slowest = max(rows, key=lambda r: float(r[1]), default=None)
        return f"slowest scenario: {slowest[0]} {slowest[1]} ms" if slowest else ""
    found = [ln.strip() for ln in lines if any(k in ln for k in HEADLINES)]
    return "; ".join(found).replace("|", "/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(HERE.parent / "docs" / "benchmarks.md"))
    parser.add_argument("--note", default="", help="a line added under the header")
    args = parser.parse_args()
    load = os.getloadavg()
    sections = []
    seconds = {}
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
        seconds[script] = elapsed
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
        f"- date: {time.strftime('%Y-%m-%d')}; sizes: "
        f"{'`--quick`' if args.quick else 'full (the scripts defaults)'}",
        f"- load average when the suite started (1/5/15 min): "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} cores",
        "- accelerator: "
        + (
            torch.cuda.get_device_name(0)
            if torch.cuda.is_available()
            else "none — CPU only; no GPU was available, so there are no GPU, bf16 or "
            "multi-GPU figures"
        ),
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "| benchmark | headline figures | wall s |",
        "|---|---|---:|",
        *(f"| `{s}` | {_headline(s, lines)} | {seconds[s]:.0f} |" for s, lines in sections),
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
