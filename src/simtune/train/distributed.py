"""Gather a batch from every process so mining losses see all of them (DDP).

Only the local slice keeps its gradient: each process backpropagates through its own embeddings, and
DDP averages the resulting parameter gradients. Batches may differ in size (a short last batch).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world_size() > 1 else 0


def shard(num_items: int, batch_size: int, rank: int, world: int) -> range:
    """Rank ``rank``'s contiguous share of ``num_items`` in whole batches of ``batch_size``: the shards
    cover every item once, in order, and cut the items into exactly the batches one process would encode,
    so a sharded encode computes the same numbers as a single one."""
    num_batches = -(-num_items // batch_size)
    first, last = (num_batches * rank) // world, (num_batches * (rank + 1)) // world
    return range(min(first * batch_size, num_items), min(last * batch_size, num_items))


def communication_device(device: torch.device) -> torch.device:
    """Where collectives take their tensors: the GPU under NCCL, the CPU under gloo."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def gather_rows(tensor: Tensor) -> tuple[Tensor, Tensor]:
    """Concatenate ``tensor`` (rows first) across processes, the local part differentiable.

    Returns the gathered tensor and each process's row count (for index offsets).
    """
    if world_size() == 1:
        return tensor, torch.tensor([len(tensor)], device=tensor.device)
    count = torch.tensor([len(tensor)], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    counts_t = torch.cat(counts)
    longest = int(counts_t.max())
    padded = tensor.detach().new_zeros((longest, *tensor.shape[1:]))
    padded[: len(tensor)] = tensor.detach()
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    parts = [part[: int(n)] for part, n in zip(parts, counts_t)]
    parts[dist.get_rank()] = tensor
    return torch.cat(parts), counts_t


def gather_targets(targets: dict[str, Tensor], counts: Tensor) -> dict[str, Tensor]:
    """Gather loss targets to match gathered rows; pair indices are shifted by earlier processes' rows."""
    if world_size() == 1:
        return targets
    gathered = {key: gather_rows(value)[0] for key, value in targets.items() if key != "pairs"}
    if "pairs" in targets:
        pairs, pair_counts = gather_rows(targets["pairs"])
        row_offsets = torch.cumsum(counts, 0) - counts
        gathered["pairs"] = pairs + torch.repeat_interleave(row_offsets, pair_counts).unsqueeze(1)
    return gathered
