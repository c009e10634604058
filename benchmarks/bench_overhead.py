"""Framework overhead: one training epoch through modalab (Lightning) vs a hand-written loop.

Both sides train the same CLIP model (same initial weights, same batches, AdamW + cosine
schedule, same loss) on the default `shapes` config. Epoch times are measured by a callback
(Lightning side) and by `time.perf_counter` (hand-written side), alternating the two
side by side, and the median ratio is printed. Run:

    python benchmarks/bench_overhead.py [--epochs 4] [--repeats 3] [--n-samples 6000]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import lightning as L
import torch
from omegaconf import OmegaConf

from modalab.data.tensor_dataset import make_loader
from modalab.experiments.build import build_data, build_encoders, build_method
from modalab.experiments.config import compose_config


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.times.append(time.perf_counter() - self.start)


def lightning_epochs(method: L.LightningModule, loader, epochs: int) -> list[float]:
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
        deterministic=True,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(method, loader)
    return timer.times


def plain_epochs(
    method: L.LightningModule, loader, epochs: int, lr: float, wd: float
) -> list[float]:
    encoder, loss_fn = method.encoder, method.loss
    params = list(method.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    method.train()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for batch in loader:
            out = loss_fn(encoder.project(encoder(batch.inputs)), batch.present)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            scheduler.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-samples", type=int, default=6000)
    args = parser.parse_args()
    cfg = compose_config([f"data.n_samples={args.n_samples}"])
    plain = OmegaConf.to_container(cfg, resolve=True)
    splits = build_data(plain["data"])
    torch.manual_seed(0)
    template = build_method(
        plain["method"], build_encoders(plain["model"], splits), splits, cfg.model.embed_dim
    )
    loader = make_loader(splits.train, cfg.trainer.batch_size, shuffle=True, drop_last=True)
    print(
        f"threads={torch.get_num_threads()} train samples={len(splits.train)} "
        f"batches/epoch={len(loader)} epochs/measure={args.epochs} (first epoch discarded)"
    )
    modalab_times, plain_times, ratios = [], [], []
    for r in range(args.repeats):
        a = lightning_epochs(copy.deepcopy(template), loader, args.epochs)[1:]
        b = plain_epochs(
            copy.deepcopy(template), loader, args.epochs, cfg.method.lr, cfg.method.weight_decay
        )[1:]
        modalab_times += a
        plain_times += b
        ratios.append(statistics.median(a) / statistics.median(b))
        print(
            f"repeat {r}: modalab {statistics.median(a):.3f}s/epoch, "
            f"hand-written {statistics.median(b):.3f}s/epoch, ratio {ratios[-1]:.3f}"
        )
    print(
        f"median epoch: modalab {statistics.median(modalab_times):.3f}s, "
        f"hand-written {statistics.median(plain_times):.3f}s"
    )
    print(
        f"overhead ratio (median over repeats): {statistics.median(ratios):.3f}  (target <= 1.05)"
    )


if __name__ == "__main__":
    main()
