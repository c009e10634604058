"""``trainer.allocator``: glibc keeps freed memory for reuse, recorded, and not part of identity.

Checked on the allocator itself, in a fresh interpreter each time (``mallopt`` is global to a
process): glibc's ``mallinfo2().hblkhd`` counts the bytes of blocks served by ``mmap``. With
the C library's defaults a 64 MiB tensor is such a block; with ``reuse`` it comes from the
heap (the setting that removes the page faults of re-touching fresh memory every step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from modalab.experiments.allocator import _glibc, set_allocator
from modalab.experiments.config import ConfigError, compose_config
from modalab.experiments.runner import config_hash, run_id

#: glibc's malloc statistics in a probe script (``mallinfo2().hblkhd``: bytes in mmapped blocks).
MALLINFO = """
import ctypes
import torch

class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
"""

PROBE = (
    MALLINFO
    + """
import json, sys
from modalab.experiments.allocator import set_allocator

def mmapped_by_64_mib():
    before = libc.mallinfo2().hblkhd
    block = torch.ones(16 * 2**20)  # 64 MiB
    return (libc.mallinfo2().hblkhd - before) / 2**20, float(block[-1])

out = {}
for choice in sys.argv[1:]:
    out[choice + " " + str(len(out))] = [set_allocator(choice), mmapped_by_64_mib()[0]]
print(json.dumps(out))
"""
)


def _environment(**extra: str) -> dict[str, str]:
    """This process's environment without malloc settings of its own, plus ``extra``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environment.pop("LD_PRELOAD", None)
    return environment | extra


def _probe(*choices: str, env: dict[str, str] | None = None) -> dict[str, list]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *choices],
        capture_output=True,
        text=True,
        env=_environment(**(env or {})),
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


needs_glibc = pytest.mark.skipif(_glibc() is None, reason="mallopt is GNU libc's (Linux) only")


@needs_glibc
def test_reuse_serves_large_blocks_from_the_heap_and_system_restores_mmap() -> None:
    out = _probe("system", "reuse", "system")
    assert out["system 0"] == ["system", pytest.approx(64, abs=1)]  # glibc's default: mmap
    assert out["reuse 1"] == ["reuse", 0]  # the heap, kept for the next step
    assert out["system 2"] == ["system", pytest.approx(64, abs=1)]  # defaults restored


@needs_glibc
def test_the_environment_wins() -> None:
    out = _probe("reuse", env={"MALLOC_MMAP_MAX_": "65536"})
    assert out["reuse 0"] == ["system (MALLOC_MMAP_MAX_ set)", pytest.approx(64, abs=1)]


def test_bad_value_is_a_config_error_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"trainer\.allocator='fast'.*reuse or system"):
        compose_config(["trainer.allocator=fast"])
    with pytest.raises(ValueError, match="use one of reuse, system"):
        set_allocator("fast")


def test_allocator_is_not_part_of_a_runs_identity() -> None:
    def plain(*overrides: str) -> dict:
        return OmegaConf.to_container(compose_config(list(overrides)), resolve=True)

    reuse, system = plain(), plain("trainer.allocator=system")
    assert reuse["trainer"]["allocator"] == "reuse"
    assert config_hash(reuse) == config_hash(system)
    assert run_id(reuse) == run_id(system)
    assert config_hash(reuse) != config_hash(plain("trainer.batch_size=128"))  # the check bites


RELEASE = (
    MALLINFO
    + """
from modalab.experiments.allocator import release_freed_memory, set_allocator

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) // 1024

print(set_allocator("reuse"))
blocks = [torch.ones(16 * 2**20) for _ in range(4)]  # 4 x 64 MiB, touched
held = rss_mib()
del blocks
kept = rss_mib()
release_freed_memory()
released = rss_mib()
before = libc.mallinfo2().hblkhd
large, small = torch.ones(16 * 2**20), torch.ones(2**20)  # 64 MiB, 4 MiB
mapped = (libc.mallinfo2().hblkhd - before) // 2**20
del large, small
print(set_allocator("reuse"))  # the next run of the same process
before = libc.mallinfo2().hblkhd
again = torch.ones(16 * 2**20)
print(held, kept, released, mapped, (libc.mallinfo2().hblkhd - before) // 2**20)
"""
)


@needs_glibc
def test_release_returns_the_kept_blocks_and_maps_large_ones_again() -> None:
    done = subprocess.run(
        [sys.executable, "-c", RELEASE],
        capture_output=True,
        text=True,
        env=_environment(),
        check=True,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[-3] == lines[-2] == "reuse"
    held, kept, released, mapped, next_run = (int(v) for v in lines[-1].split())
    assert kept > held - 32  # freed, but kept in the process for the next step
    assert released < kept - 200  # malloc_trim returned (most of) the 256 MiB
    assert mapped == 64  # evaluation: blocks over 32 MiB are mapped (and unmapped) again
    assert next_run == 0  # a second run in the process keeps freed memory again
