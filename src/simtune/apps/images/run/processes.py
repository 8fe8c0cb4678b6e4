"""Training processes that ``torchrun`` started: all of them run the whole command from its first line.

Lightning's own launcher starts the other ranks only when training begins, after the first process has
prepared the run and encoded its images; ``torchrun`` starts every rank at once. Those join their process
group at the start (``join_torchrun_group``), so the images the cache lacks are encoded a shard per
process (``simtune.train.cache.sharded``; rank 0 writes them) and Lightning trains in the same group; and
what writes the run folder runs on rank 0 before the others (``rank_zero_first``), which then read it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import TorchElasticEnvironment

from simtune.train.distributed import rank, world_size


def join_torchrun_group(device: torch.device) -> None:
    """Under ``torchrun``, join its process group now (NCCL on a GPU, gloo on a CPU); elsewhere nothing."""
    if TorchElasticEnvironment.detect() and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def process_device(device: torch.device) -> torch.device:
    """Where this process encodes: in a process group on GPUs, its own (``LOCAL_RANK``); else ``device``."""
    if device.type == "cuda" and dist.is_available() and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextmanager
def rank_zero_first() -> Iterator[None]:
    """In a process group, rank 0 runs the block before the others (which wait, then run it reading what rank 0
    wrote); it lets them go even when it fails, so they fail on the same input rather than wait forever."""
    grouped = world_size() > 1
    if grouped and rank() != 0:
        dist.barrier()
    try:
        yield
    finally:
        if grouped and rank() == 0:
            dist.barrier()
