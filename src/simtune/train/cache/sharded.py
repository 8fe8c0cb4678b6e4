"""Filling one cache from several processes (DDP): each rank encodes its shard, every rank gets the whole.

Launched by Lightning (``devices``/``num_nodes``), ``torchrun`` or SLURM, the processes share a
``torch.distributed`` group; ``load_or_fill`` then hands each rank a contiguous run of whole batches
(:func:`simtune.train.distributed.shard`), so the ranks together encode every item once, in the same
batches a single process would, and gathers the rows in order. Every rank needs every row (a
distributed sampler may draw any item), so all of them receive the full table; rank 0 saves it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset, Subset

from simtune.train.cache.storage import CachedEmbeddings
from simtune.train.distributed import communication_device, gather_rows, rank, shard, world_size


def agree(found: bool, device: torch.device) -> bool:
    """True on every rank iff ``found`` is true on every rank: the ranks must take the same branch
    (load, or fill together), or a collective would wait forever."""
    if world_size() == 1:
        return found
    flag = torch.tensor([int(found)], device=communication_device(device))
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def fill_sharded(
    dataset: Dataset,
    batch_size: int,
    device: torch.device,
    storage_device: torch.device,
    fill: Callable[[Dataset, bool], CachedEmbeddings],
) -> CachedEmbeddings:
    """``fill(items, progress)`` over this rank's shard, then every rank's rows gathered in rank order.

    With fewer batches than ranks, every rank encodes everything (nothing worth splitting)."""
    world = world_size()
    num_items = len(dataset)
    if world == 1 or -(-num_items // batch_size) < world:
        return fill(dataset, rank() == 0)
    own = shard(num_items, batch_size, rank(), world)
    part = fill(Subset(dataset, own), rank() == 0)
    where = communication_device(device)
    embeddings = {name: _gathered_views(table, where).to(storage_device) for name, table in part.embeddings.items()}
    targets = {key: gather_rows(value.to(where))[0].cpu() for key, value in part.targets.items()}
    return CachedEmbeddings(part.kind, embeddings, targets, part.fingerprint)


def _gathered_views(table: Tensor, where: torch.device) -> Tensor:
    """(views, rows, dim) per rank -> (views, all rows, dim): gathered rows first, as ``gather_rows`` does."""
    rows_first = table.transpose(0, 1).contiguous().to(where)
    return gather_rows(rows_first)[0].transpose(0, 1).contiguous()
