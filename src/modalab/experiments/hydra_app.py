r"""A Hydra application around the runner, for Hydra's multirun launchers (SLURM, Ray).

``modalab sweep --print-hydra`` prints commands such as::

    python -m modalab.experiments.hydra_app --multirun hydra/launcher=submitit_slurm \\
        method=clip 'scenario=[missing]' scenario.missing.rate=0.0,0.5,1.0 seed=0,1,2 \\
        store=results/missing_modality ...

Hydra expands the comma lists and its launcher (``hydra-submitit-launcher`` for SLURM,
``hydra-ray-launcher`` for Ray, installed separately) schedules the jobs. Every job skips its
run if the results store already holds it, so a resubmitted sweep resumes.
"""

from __future__ import annotations

from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from modalab.experiments.config import register_configs
from modalab.experiments.runner import run, run_id
from modalab.experiments.store import ResultsStore

__all__ = ["main"]

register_configs()


@hydra.main(version_base="1.3", config_path=None, config_name="config")
def main(cfg: DictConfig) -> None:
    """Run one composed configuration unless the results store already has it."""
    plain: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    plain.pop("defaults", None)
    rid = run_id(plain)
    if plain.get("store") and ResultsStore(plain["store"]).has(rid):
        print(f"skipped: run {rid} is already in {plain['store']}")
        return
    if not plain.get("run_name"):
        plain["run_name"] = rid  # parallel jobs never share a run directory
        plain["resume"] = True  # a resubmitted job continues from its last checkpoint
    run(plain, quiet=True)
    print(f"done: run {rid}")


if __name__ == "__main__":
    main()
