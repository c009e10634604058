"""Global-batch losses under DDP: 2 gloo processes × B rows == 1 process × 2B rows.

Each process holds half of the batch, wraps the model in ``DistributedDataParallel`` (which
averages gradients) and computes the loss with embeddings gathered from both processes. The
loss and the parameter gradients must equal those of one process holding the whole batch —
for every contrastive objective of the project: CLIP, SimCLR's NT-Xent, SLIP (CLIP + NT-Xent),
MoCo v2 (queue of negatives, cross-modal; the queues after enqueueing must match too) and v3
(in-batch negatives), RINCE, the robust-CLIP recipe's per-pair losses with small-loss
filtering, and LiT-style contrastive distillation — and for VICReg and Barlow Twins (whose
variance, covariance and cross-correlation are statistics of the global batch). The two
processes hold different numbers of present rows, so a mean of per-process means would differ.
"""

from __future__ import annotations

import datetime
import gc
import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from modalab.data.batch import MultimodalBatch
from modalab.methods.robust_clip import RobustCLIPMethod
from modalab.models.multimodal import MultimodalEncoder
from modalab.objectives import (
    BarlowTwinsLoss,
    CLIPLoss,
    ContrastiveDistillationLoss,
    MoCoLoss,
    NTXentLoss,
    RINCELoss,
    VICRegLoss,
    small_loss_selection,
)

B = 6  # rows per process
LOSSES = (
    "clip",
    "simclr",
    "slip",
    "moco_v2",
    "moco_v3",
    "rince",
    "robust_clip",
    "distill",
    "vicreg",
    "barlow",
)


class _Model(nn.Module):
    def __init__(self, loss_name: str) -> None:
        super().__init__()
        self.loss_name = loss_name
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(3, 4)
        # Frozen "momentum" encoders that produce MoCo's keys.
        self.key_a = nn.Linear(5, 4).requires_grad_(False)
        self.key_b = nn.Linear(3, 4).requires_grad_(False)
        self.method = RobustCLIPMethod(
            MultimodalEncoder(nn.ModuleDict({"a": nn.Linear(5, 4), "b": nn.Linear(3, 4)})),
            ("a", "b"),
            loss="rince",
            temperature=0.5,
            q=0.5,
            lam=0.5,
        )
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.clip = CLIPLoss(temperature=0.5, learn_temperature=True)
        self.loss: nn.Module = {
            "clip": self.clip,
            "simclr": NTXentLoss(temperature=0.5),
            "slip": NTXentLoss(temperature=0.5),
            "moco_v2": MoCoLoss(["a", "b"], dim=4, queue_size=16, temperature=0.5, seed=3),
            "moco_v3": MoCoLoss(["a", "b"], dim=4, queue_size=0, temperature=0.5),
            "rince": RINCELoss(temperature=0.5, q=0.5, lam=0.5),
            "robust_clip": nn.Identity(),
            "distill": ContrastiveDistillationLoss(temperature=0.5),
            "vicreg": VICRegLoss(),
            "barlow": BarlowTwinsLoss(redundancy_weight=0.1),
        }[loss_name]

    def forward(self, xa: torch.Tensor, xb: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        name, loss = self.loss_name, self.loss
        both = {"a": present, "b": torch.ones_like(present)}
        if name in ("simclr", "slip"):  # two "views" of modality a through the same encoder
            views = {"v1": self.a(xa), "v2": self.a(xa.flip(1))}
            total = loss(views, {"v1": present, "v2": present}).loss
            if name == "slip":
                total = total + 0.5 * self.clip({"a": self.a(xa), "b": self.b(xb)}, both).loss
            return total  # type: ignore[no-any-return]
        if name.startswith("moco"):
            queries = {"a": self.a(xa), "b": self.b(xb)}
            keys = {"a": self.key_a(xa), "b": self.key_b(xb)}
            total = loss(queries, keys, both).loss
            loss.enqueue(keys, both)  # type: ignore[operator]
            return total  # type: ignore[no-any-return]
        if name == "robust_clip":
            batch = MultimodalBatch(
                inputs={"a": xa, "b": xb},
                present=both,
                label=torch.zeros(len(xa), dtype=torch.long),
                label_observed=torch.ones(len(xa), dtype=torch.bool),
                clean_label=torch.zeros(len(xa), dtype=torch.long),
                index=torch.arange(len(xa)),
            )
            losses, _ = self.method.pair_losses(batch)
            return losses[small_loss_selection(losses, 0.75)].mean()
        if name == "distill":  # student a, locked teacher b
            return loss(self.a(xa), self.b(xb), present).loss  # type: ignore[no-any-return]
        return loss({"a": self.a(xa), "b": self.b(xb)}, both).loss  # type: ignore[no-any-return]


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    xa = torch.randn(2 * B, 5, generator=g)
    xb = torch.randn(2 * B, 3, generator=g)
    present = torch.ones(2 * B, dtype=torch.bool)
    present[[1, 8, 10]] = False  # one absent row on process 0, two on process 1
    return xa, xb, present


def _loss_and_grads(model: nn.Module, *args: torch.Tensor) -> dict[str, torch.Tensor]:
    loss = model(*args)
    loss.backward()
    out = {"loss": loss.detach()}
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    for name, p in inner.named_parameters():
        if p.grad is not None:
            out[name] = p.grad.detach().clone()
    for name, buffer in inner.named_buffers():
        if "queue_" in name or "pointer_" in name:
            out[name] = buffer.clone()
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=120),  # a desynchronised collective fails, not hangs
    )
    try:
        xa, xb, present = _data()
        rows = slice(rank * B, (rank + 1) * B)
        results = {}
        for name in LOSSES:
            # Every model leaves some parameters unused (the other losses' encoders).
            model = nn.parallel.DistributedDataParallel(_Model(name), find_unused_parameters=True)
            results[name] = _loss_and_grads(model, xa[rows], xb[rows], present[rows])
            # Free each DDP wrapper while its process group lives: a reducer torn down after
            # destroy_process_group() can block the process at exit.
            del model
            gc.collect()
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two gloo processes that each import torch: the slowest test of the fast tier
@pytest.mark.distributed
def test_two_process_losses_and_gradients_equal_single_process() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = str(Path(tmp) / "init")
        mp.spawn(_worker, args=(init_file, tmp), nprocs=2, join=True)
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(2)]
    xa, xb, present = _data()
    for name in LOSSES:
        single = _loss_and_grads(_Model(name), xa, xb, present)
        if name == "moco_v2":  # the queues moved: 9 + 12 global keys enqueued
            assert int(single["loss.pointer_a"]) == 9 and int(single["loss.pointer_b"]) == 12
        if name == "distill":  # the locked teacher receives no gradient
            assert "a.weight" in single and "b.weight" not in single
        if name.startswith("moco"):  # nor do the momentum encoders
            assert "b.weight" in single and "key_a.weight" not in single
        for rank in ranks:
            got = rank[name]
            assert set(got) == set(single), name
            for key, expected in single.items():
                torch.testing.assert_close(
                    got[key], expected, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}"
                )


def _unequal_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=rank,
        world_size=2,
        timeout=datetime.timedelta(seconds=120),
    )
    try:
        from modalab.objectives.distributed import gather_with_grad

        local = torch.randn(3 + rank, 4, requires_grad=True)  # 3 rows on rank 0, 4 on rank 1
        try:
            gather_with_grad(local)
            message = "no error"
        except ValueError as error:
            message = str(error)
        (Path(out_dir) / f"rank{rank}.txt").write_text(message)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.distributed
def test_unequal_local_batches_raise_a_clear_error_instead_of_aborting() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        init_file = str(Path(tmp) / "init")
        mp.spawn(_unequal_worker, args=(init_file, tmp), nprocs=2, join=True)
        messages = [(Path(tmp) / f"rank{r}.txt").read_text() for r in range(2)]
    for message in messages:
        assert "range from 3 to 4" in message and "drop_last=True" in message
