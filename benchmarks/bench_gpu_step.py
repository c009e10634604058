"""AV-MNIST training step on a GPU: what deterministic kernels, layout and bf16 cost there.

One training step (forward, loss, backward, AdamW) of ``method=supervised`` (late fusion) and
``method=clip`` on a batch shaped like ``data=avmnist``'s default protocol (image
``[B, 1, 28, 28]``, spectrogram ``[B, 1, 112, 112]``, ``model.embed_dim=128``), for the
``lenet`` encoders (channels-last, the default, and NCHW) and ``cnn2d``, each with
deterministic algorithms on (``trainer.deterministic=warn``: what Lightning sets, cuDNN
autotuning off) and off (cuDNN autotuning on), in fp32 and under bf16 autocast. The median of
``--steps`` timed steps (after warm-up, ``torch.cuda.synchronize`` around each) is printed with
the time of one 215-step epoch (55,000 samples at batch 256). Needs a CUDA GPU (``--device
cpu`` runs it on the CPU, for a check of the script). Run:

    python benchmarks/bench_gpu_step.py [--batch-size 256] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from _common import method_and_optimizer, random_batch
from modalab.data.batch import MultimodalBatch
from modalab.models.encoders import build_encoder

SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
TRAIN_SIZE = 55_000
ENCODERS: dict[str, tuple[str, dict[str, bool]]] = {
    "lenet": ("lenet", {}),
    "lenet NCHW": ("lenet", {"channels_last": False}),
    "cnn2d": ("cnn2d", {}),
}


def _method(
    method: str, encoder: str, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    name, kwargs = ENCODERS[encoder]
    encoders = torch.nn.ModuleDict(
        {m: build_encoder(name, torch.zeros(2, *s), 128, **kwargs) for m, s in SHAPES.items()}
    )
    return method_and_optimizer(method, encoders, device)


def _deterministic(on: bool) -> None:
    # What Lightning's Trainer(deterministic="warn" / False) sets, plus cuDNN autotuning off/on.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic = on
    torch.backends.cudnn.benchmark = not on


def _time(
    method: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: MultimodalBatch,
    steps: int,
    bf16: bool,
    device: torch.device,
) -> float:
    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = method.training_step(batch, 0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(5):
        step()
    times = []
    for _ in range(steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}; torch {torch.__version__}; threads {torch.get_num_threads()}; "
        f"load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    batch = random_batch(SHAPES, args.batch_size).to(device)
    epoch_steps = TRAIN_SIZE // args.batch_size
    for method in ("supervised", "clip"):
        for encoder in ENCODERS:
            for deterministic in (True, False):
                for bf16 in (False, True):
                    _deterministic(deterministic)
                    built, optimizer = _method(method, encoder, device)
                    seconds = _time(built, optimizer, batch, args.steps, bf16, device)
                    mode = "on " if deterministic else "off"
                    print(
                        f"{method:10s} {encoder:10s} deterministic {mode}"
                        f" {'bf16' if bf16 else 'fp32'}: {1e3 * seconds:7.2f} ms/step, "
                        f"{epoch_steps}-step epoch {seconds * epoch_steps:6.1f} s",
                        flush=True,
                    )
    _deterministic(False)


if __name__ == "__main__":
    main()
