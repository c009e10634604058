"""Global-batch losses under DDP: 2 gloo processes × B rows == 1 process × 2B rows.

Each process holds half of the batch, wraps the model in ``DistributedDataParallel`` (which
averages gradients) and computes the loss with embeddings gathered from both processes. The
loss and the parameter gradients must equal those of one process holding the whole batch —
for CLIP and SimCLR (negatives from the global batch) and for VICReg and Barlow Twins (whose
variance, covariance and cross-correlation are statistics of the global batch).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from modalab.objectives import BarlowTwinsLoss, CLIPLoss, NTXentLoss, VICRegLoss

B = 6  # rows per process
LOSSES = ("clip", "simclr", "vicreg", "barlow")


class _Model(nn.Module):
    def __init__(self, loss_name: str) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Linear(5, 4)
        self.b = nn.Linear(3, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.loss_name = loss_name
        self.loss: nn.Module = {
            "clip": CLIPLoss(temperature=0.5, learn_temperature=True),
            "simclr": NTXentLoss(temperature=0.5),
            "vicreg": VICRegLoss(),
            "barlow": BarlowTwinsLoss(redundancy_weight=0.1),
        }[loss_name]

    def forward(self, xa: torch.Tensor, xb: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self.loss_name == "simclr":  # two "views" through the same encoder
            z = {"v1": self.a(xa), "v2": self.a(xa.flip(1))}
            p = {"v1": present, "v2": present}
        else:
            z = {"a": self.a(xa), "b": self.b(xb)}
            p = {"a": present, "b": torch.ones_like(present)}
        return self.loss(z, p).loss  # type: ignore[no-any-return]


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    xa = torch.randn(2 * B, 5, generator=g)
    xb = torch.randn(2 * B, 3, generator=g)
    present = torch.ones(2 * B, dtype=torch.bool)
    present[[1, 8]] = False  # one absent row in each process's half
    return xa, xb, present


def _loss_and_grads(model: nn.Module, *args: torch.Tensor) -> dict[str, torch.Tensor]:
    loss = model(*args)
    loss.backward()
    out = {"loss": loss.detach()}
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    for name, p in inner.named_parameters():
        if p.grad is not None:
            out[name] = p.grad.detach().clone()
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        xa, xb, present = _data()
        rows = slice(rank * B, (rank + 1) * B)
        results = {}
        for name in LOSSES:
            # SimCLR leaves encoder b unused.
            model = nn.parallel.DistributedDataParallel(_Model(name), find_unused_parameters=True)
            results[name] = _loss_and_grads(model, xa[rows], xb[rows], present[rows])
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


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
        for rank in ranks:
            got = rank[name]
            assert set(got) == set(single), name
            for key, expected in single.items():
                torch.testing.assert_close(
                    got[key], expected, rtol=1e-5, atol=1e-6, msg=f"{name}: {key}"
                )
