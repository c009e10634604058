"""End to end: `modalab run method=<name>` for every method, `modalab methods`, DDP on 2 CPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from modalab.cli.main import main

#: The self-supervised recipes (besides clip; supervised is the baseline).
SSL_METHODS = (
    "simclr",
    "slip",
    "moco",
    "byol",
    "simsiam",
    "vicreg",
    "barlow",
    "masked",
    "fusion",
    "coca",
)

TINY = [
    "data.n_samples=300",
    "trainer.max_epochs=1",
    "trainer.batch_size=64",
    "eval.l2_grid=[0.01]",
]


@pytest.mark.slow
def test_modalab_run_every_method(tmp_path: Path) -> None:
    methods = ",".join(SSL_METHODS)
    code = main(["run", f"method={methods}", *TINY, f"output_dir={tmp_path}", "--quiet"])
    assert code == 0
    finished = sorted(tmp_path.glob("*/metrics.json"))
    assert len(finished) == len(SSL_METHODS)
    for path in finished:
        payload = json.loads(path.read_text())
        table = pd.DataFrame(payload["metrics"])
        probe = table[table.metric == "linear_probe_acc"]
        # Every modality and the fused representation are probed, accuracies are probabilities.
        assert set(probe.modality) == {"image", "text", "audio", "fused"}
        assert probe.value.between(0, 1).all()


def test_modalab_methods_lists_every_method(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in [*SSL_METHODS, "clip", "supervised"]:
        assert f"│ {name} " in out


@pytest.mark.slow
@pytest.mark.distributed
def test_lightning_ddp_on_two_cpu_processes(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    env.pop("MODALAB_RUN_DIR", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "modalab",
            "run",
            "trainer.devices=2",
            "trainer.strategy=ddp",
            *TINY,
            f"output_dir={tmp_path}",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1, runs  # both processes used the run directory of rank 0
    assert (runs[0] / "metrics.json").exists()
    # 180 training samples, batch 64 per process, 2 processes, drop_last: 1 step per epoch
    # (one process alone would take 2).
    last = torch.load(runs[0] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 1  # one epoch (trainer.max_epochs=1) of one step
    assert result.stdout.count("frozen-representation accuracy") == 1  # only rank 0 reports
