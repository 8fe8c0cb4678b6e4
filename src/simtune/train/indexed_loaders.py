"""The loaders ``fit`` hands to Lightning: the user's batches, each sample's dataset index added.

A rebuilt loader keeps the original's sampler or batch sampler (shuffle, class balancing, their
state) and its worker settings, and leaves the original untouched for reuse after fit. The indices
(``targets["indices"]``) let cross-batch memory recognise an older embedding of a batch sample, and
let validation under DDP count each sample once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset


class IndexedItems(Dataset):
    """Item ``i`` is ``i`` (nothing of the source needed: all encoders cached) or ``(i, source[i])``."""

    def __init__(self, source: Dataset, read_source: bool):
        self.source = source
        self.read_source = read_source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        return (index, self.source[index]) if self.read_source else index


class IndexedCollate:
    """``[(i, sample)] -> (features, targets + {"indices"})`` with the loader's own collate for the rest."""

    def __init__(self, collate: Callable[[list[Any]], tuple[Any, dict[str, Tensor]]]):
        self.collate = collate

    def __call__(self, items: list[tuple[int, Any]]) -> tuple[Any, dict[str, Tensor]]:
        features, targets = self.collate([sample for _, sample in items])
        return features, targets | {"indices": torch.tensor([index for index, _ in items], dtype=torch.long)}


def uses_own_batch_sampler(loader: DataLoader) -> bool:
    """A batch sampler other than torch's (``ClassBalancedBatchSampler``) shards itself under DDP; Lightning
    cannot inject a DistributedSampler into it."""
    return loader.batch_sampler is not None and type(loader.batch_sampler) is not BatchSampler


def rebuild_dataloader(original: DataLoader, items: IndexedItems, collate: Callable[[list[Any]], Any]) -> DataLoader:
    """Same batches as ``original`` (same sampler state, shuffle, class balancing), over ``items``."""
    workers = (
        dict(
            num_workers=original.num_workers,
            worker_init_fn=original.worker_init_fn,
            persistent_workers=original.persistent_workers,
            multiprocessing_context=original.multiprocessing_context,
        )
        if items.read_source
        else {}
    )
    if original.batch_sampler is None:
        raise ValueError("train/val dataloader has batch_size=None; simtune.fit needs batched loading")
    if not uses_own_batch_sampler(original):
        return DataLoader(
            items,
            batch_size=original.batch_size,
            sampler=original.sampler,
            drop_last=original.drop_last,
            collate_fn=collate,
            generator=original.generator,
            **workers,
        )
    return DataLoader(
        items, batch_sampler=original.batch_sampler, collate_fn=collate, generator=original.generator, **workers
    )
