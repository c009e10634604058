"""Run every benchmark and write their printed figures into docs/benchmarks.md.

    python benchmarks/run_all.py [--quick] [--tests] [--default-run] [--only bench_x.py ...]

Each script runs in its own process, one after the other (never in parallel: the figures
are wall times). `--quick` passes smaller sizes, for a smoke check. A script that is absent
or fails (e.g. AV-MNIST without its data folder) is reported as such; the others still run.
The figures of issue 18 are printed against their targets in one table, with the load
average and the thread settings; `--tests` also times the fast test tier
(`pytest -m "not slow"`) and `--default-run` a default `modalab run`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    "bench_probe.py": ([], ["--shapes", "6000x128", "--repeats", "1"]),
    # 11 rounds: the "when filed" step (fp32 NCHW, system allocator) varied from 177 to 224
    # ms between two 7-15-round runs five minutes apart (2026-11-30), and the ratio with it.
    "bench_step.py": ([], ["--rounds", "11", "--batch-size", "256"]),
    # Written by other work on issue 18; run when present.
    "bench_threads.py": ([], ["--repeats", "1", "--epochs", "1", "--n-samples", "600"]),
    "bench_startup.py": ([], []),
    "bench_avmnist_loading.py": ([], ["--max-images", "2000"]),
    "bench_avmnist_eval.py": ([], []),
    "bench_avmnist_encoders.py": ([], ["--rounds", "3", "--batch-size", "256"]),
    "bench_batchnorm.py": ([], ["--repeats", "3"]),
}


@dataclass
class Target:
    """One figure of issue 18: where it is printed, how to read it, and its target."""

    figure: str
    script: str
    pattern: str  # regex whose first group is the value
    target: str
    meets: Callable[[float], bool] | None  # None: a figure to report, no pass/fail

    def read(self, outputs: dict[str, str]) -> tuple[str, str]:
        """``(value, verdict)`` from the scripts' outputs."""
        if self.script not in outputs:
            return f"n/a — measured by {self.script} (not run here)", ""
        found = re.search(self.pattern, outputs[self.script])
        if not found:
            return f"n/a — not printed by {self.script}", ""
        value = found.group(1)
        if self.meets is None:
            return value, ""
        return value, "yes" if self.meets(float(value.replace(",", ""))) else "NO"


TARGETS = [
    Target(
        "threads: run wall, torch default / modalab",
        "bench_threads.py",
        r"ratio torch / modalab:.*?run wall ([\d.]+)x",
        ">= 1 (no stall)",
        lambda v: v >= 1,
    ),
    Target(
        "probe: time sklearn / modalab (worst shape)",
        "bench_probe.py",
        r"probe ratio \(worst shape[^)]*\): ([\d.]+)",
        ">= 1",
        lambda v: v >= 1,
    ),
    Target(
        "probe: largest absolute accuracy difference (pt)",
        "bench_probe.py",
        r"largest \|accuracy difference\|: ([\d.]+) pt",
        "<= 0.1",
        lambda v: v <= 0.1,
    ),
    Target(
        "step, AV-MNIST default (lenet, batch 256): now / before the batch-norm and allocator fix",
        "bench_avmnist_encoders.py",
        r"batch 256: lenet step ratio \(default now: .*?\): ([\d.]+)",
        "<= 0.67 (1.5x)",
        lambda v: v <= 0.67,
    ),
    Target(
        "step, issue's cnn2d CLIP step: now / when filed (fp32 NCHW, system allocator)",
        "bench_step.py",
        r"step ratio \(default now: .*?\): ([\d.]+)",
        "<= 0.67 (1.5x)",
        lambda v: v <= 0.67,
    ),
    Target(
        "step, cnn2d: channels_last + bf16 / fp32 NCHW, reuse allocator (opt-in)",
        "bench_step.py",
        r"channels_last \+ bf16\s+allocator reuse\s*:\s*[\d.]+ ms/step\s+ratio to fp32 NCHW, "
        r"system ([\d.]+)",
        "report (bf16 accuracy: docs/scale.md)",
        None,
    ),
    Target(
        "AV-MNIST cache size (MiB)",
        "bench_avmnist_loading.py",
        r"first build.*?cache ([\d.,]+) MiB",
        "<= 381 (400 MB)",
        lambda v: v <= 381,
    ),
    Target(
        "AV-MNIST first build peak RSS (MiB)",
        "bench_avmnist_loading.py",
        r"first build.*?peak RSS ([\d.,]+) MiB",
        "<= 1431 (1.5 GB)",
        lambda v: v <= 1431,
    ),
    Target(
        "AV-MNIST cached load peak RSS (MiB)",
        "bench_avmnist_loading.py",
        r"cached\s*:.*?peak RSS ([\d.,]+) MiB",
        "run <= 2384 (2.5 GB)",
        lambda v: v <= 2384,
    ),
    Target(
        "AV-MNIST evaluation beyond feature extraction (s)",
        "bench_avmnist_eval.py",
        r"beyond feature extraction: ([\d.]+) s",
        "<= 30",
        lambda v: v <= 30,
    ),
    Target(
        "start-up: modalab --help (s)",
        "bench_startup.py",
        r"modalab --help\s+([\d.]+)",
        "< 1",
        lambda v: v < 1,
    ),
    Target(
        "start-up: modalab list (s)",
        "bench_startup.py",
        r"modalab list\s+([\d.]+)",
        "< 2",
        lambda v: v < 2,
    ),
    Target(
        "fast test tier (s)",
        "pytest -m 'not slow'",
        r"fast tier wall ([\d.]+) s",
        "<= 180 (idle 2 cores)",
        lambda v: v <= 180,
    ),
    Target(
        "default `modalab run` (s)",
        "modalab run",
        r"default run wall ([\d.]+) s",
        "docs quote it",
        None,
    ),
    Target(
        "efficiency: step / matmul (%)",
        "bench_flops.py",
        r"efficiency \(step / matmul\): ([\d.]+)%",
        "docs quote it",
        None,
    ),
    Target(
        "counterfactual cache speed-up (x)",
        "bench_counterfactual.py",
        r"speed-up\s*:\s*([\d.]+) x",
        "docs quote it",
        None,
    ),
]
#: Printed lines that carry a benchmark's headline figure (copied into the summary table).
HEADLINES = ("speed-up", "ratio", "efficiency", "peak memory", "R@1", "samples/s", "peak RSS")


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


#: Heading of the section of docs/benchmarks.md written by hand (figures measured under load
#: or by scripts outside the table); a regeneration keeps it, from the heading to the end.
HAND_KEPT = "## Measured under load (kept by hand"


def _hand_kept(path: Path) -> list[str]:
    """The hand-kept tail of ``path`` (empty when the file or the section is absent)."""
    if not path.is_file():
        return []
    text = path.read_text()
    start = text.find(HAND_KEPT)
    return [] if start < 0 else [*text[start:].rstrip("\n").split("\n"), ""]


def _previous_sections(path: Path) -> dict[str, list[str]]:
    """``{script: printed lines}`` of an earlier docs/benchmarks.md (for ``--only``)."""
    if not path.exists():
        return {}
    found = re.findall(r"## `([\w.]+)`\n\n.*?\n\n```text\n(.*?)\n```", path.read_text(), re.S)
    return {script: body.splitlines() for script, body in found}


def _thread_settings() -> str:
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    return ", ".join(f"{n}={os.environ.get(n, 'unset')}" for n in names) + (
        f" in this process (each benchmark that imports modalab first gets GOMP_SPINCOUNT=10000 "
        f"unless set); torch threads {torch.get_num_threads()}"
    )


def _timed(command: list[str], label: str) -> tuple[list[str], float]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent)
    elapsed = time.perf_counter() - start
    tail = [ln for ln in proc.stdout.splitlines() if ln.strip()][-3:]
    status = "" if proc.returncode == 0 else f" (exit code {proc.returncode})"
    return [*tail, f"{label} wall {elapsed:.1f} s{status}"], elapsed


def _targets_table(outputs: dict[str, str]) -> list[str]:
    rows = ["| figure | measured | target | met |", "|---|---|---|---|"]
    for target in TARGETS:
        value, verdict = target.read(outputs)
        cells = (target.figure, value, target.target, verdict)
        rows.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", default=str(HERE.parent / "docs" / "benchmarks.md"))
    parser.add_argument("--note", default="", help="a line added under the header")
    parser.add_argument(
        "--only",
        nargs="+",
        default=None,
        help="run only these scripts; the others keep the figures of the existing --output",
    )
    parser.add_argument("--tests", action="store_true", help='time `pytest -m "not slow"`')
    parser.add_argument("--default-run", action="store_true", help="time a default run")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; {_thread_settings()}")
    sections = []
    seconds = {}
    outputs: dict[str, str] = {}
    previous = _previous_sections(Path(args.output)) if args.only is not None else {}
    for script, (full, quick) in SCRIPTS.items():
        if args.only is not None and script not in args.only:
            if script in previous:  # keep the earlier run's figures, marked as such
                sections.append((script, previous[script]))
                seconds[script] = float("nan")
                outputs[script] = "\n".join(previous[script])
            continue
        if not (HERE / script).exists():
            print(f"== {script}: absent, skipped", flush=True)
            continue
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, str(HERE / script), *(quick if args.quick else full)],
            capture_output=True,
            text=True,
            cwd=HERE,
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            lines.append(f"FAILED (exit code {proc.returncode}): {last}")
        elapsed = time.perf_counter() - start
        print(f"== {script} ({elapsed:.0f}s)\n" + "\n".join(lines), flush=True)
        sections.append((script, lines))
        seconds[script] = elapsed
        if proc.returncode == 0:
            outputs[script] = "\n".join(lines)
    if args.tests:
        lines, elapsed = _timed(
            [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"],
            "fast tier",
        )
        print("== pytest -m 'not slow'\n" + "\n".join(lines), flush=True)
        outputs["pytest -m 'not slow'"] = "\n".join(lines)
    if args.default_run:
        with tempfile.TemporaryDirectory() as out:
            lines, elapsed = _timed(
                [sys.executable, "-m", "modalab", "run", "--quiet", f"output_dir={out}"],
                "default run",
            )
        print("== modalab run\n" + "\n".join(lines), flush=True)
        outputs["modalab run"] = "\n".join(lines)
    end_load = os.getloadavg()
    table = _targets_table(outputs)
    print("\n".join(["", "figures of issue 18 against their targets:", *table]))
    cpu = platform.processor() or platform.machine()
    header = [
        "# Benchmarks",
        "",
        "Regenerate with `python benchmarks/run_all.py` (each script can also run alone; "
        "see its docstring). Figures are wall times on the machine below, each ratio measured "
        "side by side in one run.",
        "",
        f"- machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        f"- thread settings: {_thread_settings()}",
        f"- date: {time.strftime('%Y-%m-%d %H:%M')}; sizes: "
        f"{'`--quick`' if args.quick else 'full (the scripts defaults)'}",
        f"- load average (1/5/15 min) at the start: "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}, at the end: "
        f"{end_load[0]:.2f} / {end_load[1]:.2f} / {end_load[2]:.2f} on {os.cpu_count()} cores",
        "- accelerator: "
        + (
            torch.cuda.get_device_name(0)
            if torch.cuda.is_available()
            else "none — CPU only (GPU step figures: benchmarks/bench_gpu_step.py, docs/scale.md)"
        ),
        *([f"- note: {args.note}"] if args.note else []),
        "",
        "## Figures of issue 18 against their targets",
        "",
        *table,
        "",
        "## Every benchmark",
        "",
        "| benchmark | headline figures | wall s |",
        "|---|---|---:|",
        *(
            f"| `{s}` | {_headline(s, lines)} | "
            f"{'earlier run' if seconds[s] != seconds[s] else f'{seconds[s]:.0f}'} |"
            for s, lines in sections
        ),
        "",
    ]
    body = []
    for script, lines in sections:
        doc = (HERE / script).read_text().split('"""')[1].strip().splitlines()[0]
        body += [f"## `{script}`", "", doc, "", "```text", *lines, "```", ""]
    Path(args.output).write_text("\n".join(header + body + _hand_kept(Path(args.output))))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
