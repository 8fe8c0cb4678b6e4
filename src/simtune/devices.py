"""Which hardware runs a step: ``auto|cpu|cuda|cuda:N`` -> a ``torch.device``, and how a GPU computes.

Every entry point (encoding, training, evaluation, serving) resolves its device here, so ``auto`` means
the same everywhere: the first GPU when CUDA is present, else the CPU. Asking for hardware that is not
there is a :class:`DeviceError` naming what was asked and what exists, never a silent CPU fallback.

Training on a GPU is mixed precision (bfloat16 where the card supports it, float16 otherwise, as
:mod:`simtune.encoding.precision` picks for inference); weights and results stay float32, so caches,
indexes and metrics do not depend on the card that computed them. Training on a CPU is float32.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from simtune.encoding.precision import autocast_dtype

AUTO = "auto"
_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(ValueError):
    """Asked-for hardware that this machine does not have, or a device name that means nothing."""


def gpu_count() -> int:
    """CUDA devices visible to this process (0 without CUDA, or with a torch built without it)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def select_device(spec: str | torch.device | None = AUTO) -> torch.device:
    """``auto`` (or None): ``cuda:0`` when CUDA is present, else ``cpu``; ``cpu``; ``cuda``; ``cuda:N``.

    Raises :class:`DeviceError` for a name that is not one of these, ``cuda`` without a GPU and
    ``cuda:N`` beyond the GPUs present."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = AUTO if spec is None else str(spec).strip().lower()
    match = _SPEC.match(text)
    if match is None or (match.group(1) != "cuda" and match.group(2) is not None):
        raise DeviceError(f"device {spec!r} is not one of auto, cpu, cuda, cuda:N")
    kind, index = match.group(1), match.group(2)
    gpus = gpu_count()
    if kind == AUTO:
        return torch.device("cuda", 0) if gpus else torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    if gpus == 0:
        raise DeviceError(f"device {spec!r}: no CUDA GPU is available here ({_why_no_gpu()}); use --device cpu")
    number = int(index or 0)
    if number >= gpus:
        raise DeviceError(f"device {spec!r}: this machine has {gpus} CUDA GPU(s), numbered 0 to {gpus - 1}")
    return torch.device("cuda", number)


def _why_no_gpu() -> str:
    if torch.version.cuda is None:
        return "this torch is built without CUDA"
    return "torch finds no CUDA device"


def check_process_count(device: torch.device, devices: int, num_nodes: int = 1) -> None:
    """``devices`` processes per machine on ``device``'s kind: at most the GPUs present on a GPU, at most
    the cores on a CPU (more processes than cores only contend). Raises :class:`DeviceError`."""
    for name, value in (("devices", devices), ("num-nodes", num_nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DeviceError(f"--{name} {value!r}: expected a whole number >= 1")
    if device.type == "cuda":
        gpus = gpu_count()
        if devices > gpus:
            raise DeviceError(f"--devices {devices}: this machine has {gpus} CUDA GPU(s)")
        if device.index not in (None, 0) and devices > 1:
            raise DeviceError(
                f"--devices {devices} with --device {device}: several processes use GPUs 0 to {devices - 1}; "
                "choose the GPUs with CUDA_VISIBLE_DEVICES instead"
            )
    elif devices > cpu_count():
        raise DeviceError(f"--devices {devices} on the CPU: this process may use {cpu_count()} CPU core(s)")


def lightning_precision(device: torch.device) -> str:
    """Lightning's ``precision`` for training on ``device``: mixed on a GPU (weights and results float32)."""
    if device.type != "cuda":
        return "32-true"
    dtype = autocast_dtype(device, "auto")
    return "bf16-mixed" if dtype == torch.bfloat16 else "16-mixed"


def trainer_options(device: str | torch.device | None = AUTO, devices: int = 1, num_nodes: int = 1) -> dict[str, Any]:
    """``pl.Trainer`` keyword arguments for ``devices`` processes per machine on ``num_nodes`` machines.

    One process trains on the selected device itself (``cuda:1`` means GPU 1); several run DDP, one
    per GPU (or CPU process, with gloo), launched by Lightning or by ``torchrun``/SLURM, whose
    environment Lightning reads."""
    selected = select_device(device)
    check_process_count(selected, devices, num_nodes)
    many = devices * num_nodes > 1
    if selected.type == "cuda":
        accelerator, chosen = "gpu", (devices if many else [selected.index or 0])
    else:
        accelerator, chosen = "cpu", devices
    return {
        "accelerator": accelerator,
        "devices": chosen,
        "num_nodes": num_nodes,
        "strategy": "ddp" if many else "auto",
        "precision": lightning_precision(selected),
    }
