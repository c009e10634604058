"""Training shared by runs that differ only at test time.

The severities of a test-time obstacle (``scenario.missing.stage=[test]`` at rates 0, 0.5
and 1) train the same model: the obstacle touches only the test split, and every other
stage, the seeds and the trainer are the same. Without sharing, a study trains it once per
severity. With ``trainer.share_training=true`` (the default) the first run of such a group
trains, saves the evaluated weights and registers them under the group's *training key*
(:func:`modalab.experiments.runner.training_key`) in ``<output_dir>/.shared/<key>.json``;
the others load those weights, copy the training record and evaluate. A lock per key makes
the runs of one group that start together (two sweep workers) wait for the first instead of
training twice. The key includes the software (modalab's git revision, ``+dirty`` for a
modified tree, and the library versions), so weights trained by other code are not reused;
a configuration run again under another ``run_name`` (same run id) trains. While editing
model code in a modified tree, set ``trainer.share_training=false``.

On a CPU, where training is deterministic (``trainer.deterministic``), a shared run's
weights are bitwise those it would have trained itself with the same thread count; on a
GPU, sharing also removes the run-to-run noise of non-deterministic kernels from the
comparison of severities. ``metrics.json`` names the run directory (in the same
``output_dir``) that trained the weights (``training.shared_from``); ``train_seconds`` is 0.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock
from torch import nn

from modalab.experiments.io import atomic_write_text
from modalab.experiments.rundir import WEIGHTS_FILE, load_weights

__all__ = ["SHARED_DIR", "SharedTraining"]

#: Folder of ``output_dir`` that holds the registry of shared trainings and their locks.
SHARED_DIR = ".shared"


@dataclass
class SharedTraining:
    """The registry entry of one training key.

    Attributes:
        folder: ``<output_dir>/.shared``.
        key: The training key.
    """

    folder: Path
    key: str

    @property
    def entry(self) -> Path:
        """The registry file: ``<key>.json``."""
        return self.folder / f"{self.key}.json"

    def lock(self) -> FileLock:
        """The lock held while the key's runs check the registry and, if needed, train."""
        self.folder.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.folder / f"{self.key}.lock"))

    def load(self, module: nn.Module, run_dir: Path, run_id: str) -> dict[str, Any] | None:
        """Load the registered weights into ``module``; ``None`` when there are none.

        A registered run whose weights are gone (its directory deleted) counts as none, and
        so does one with the same run id: the same configuration run again (another
        ``run_name``) is a rerun, which trains. Its training log (``logs/``) is copied into
        ``run_dir``.

        Returns:
            The entry: ``run_id``, ``run_dir``, ``training`` (the record of
            :func:`modalab.experiments.training.training_summary`) and ``train_seconds``.
        """
        if not self.entry.exists():
            return None
        entry: dict[str, Any] = json.loads(self.entry.read_text())
        source = Path(entry["run_dir"])
        if entry.get("run_id") == run_id or not (source / WEIGHTS_FILE).exists():
            return None
        load_weights(module, source)
        if (source / "logs").is_dir():
            shutil.copytree(source / "logs", run_dir / "logs", dirs_exist_ok=True)
        return entry

    def register(
        self, run_id: str, run_dir: Path, training: dict[str, Any], train_seconds: float
    ) -> None:
        """Record that ``run_dir`` holds the evaluated weights of this key (atomically)."""
        payload = {
            "key": self.key,
            "run_id": run_id,
            "run_dir": str(Path(run_dir).resolve()),
            "training": training,
            "train_seconds": train_seconds,
        }
        atomic_write_text(self.entry, json.dumps(payload, indent=2))
