"""A DataLoader over cache keys that reuses the original loader's sampler or batch sampler.

Batches keep the training format ``(features, targets)``; a cached encoder's feature is a (B, 2)
tensor of ``[view, row]`` keys that the model resolves against the cache on its own device, so the
loader stays cheap, picklable, and valid under DDP's sampler injection. With every encoder cached the
dataset is never read: the targets come from the cache too.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset

from simtune.train.cache.fill import split_samples
from simtune.train.cache.storage import CachedEmbeddings


class CachedItems(Dataset):
    """Item ``i`` is ``i`` (all encoders cached) or ``(i, source[i])`` (some encoders still trainable)."""

    def __init__(self, source: Dataset, read_source: bool):
        self.source = source
        self.read_source = read_source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Any:
        return (index, self.source[index]) if self.read_source else index


def pair_targets(scores: Tensor, subgroups: Tensor) -> dict[str, Tensor]:
    """Pair items laid out as rows (a0, b0, a1, b1, ...): the pair-loss targets for those rows."""
    pairs = torch.arange(2 * len(scores)).view(-1, 2)
    return {"pairs": pairs, "labels": scores.float(), "subgroups": subgroups.repeat_interleave(2)}


class CachedCollate:
    """indices -> (features, targets); trainable encoders get their usual collated input."""

    def __init__(
        self,
        cache: Callable[[], CachedEmbeddings],
        cached_names: list[str],
        trainable_collates: Mapping[str, Callable[[list[Any]], Any]],
    ):
        self.cache = cache
        self.cached_names = cached_names
        self.trainable_collates = dict(trainable_collates)

    def __call__(self, items: list[Any]) -> tuple[dict[str, Any], dict[str, Tensor]]:
        cache = self.cache()
        features: dict[str, Any] = {}
        if self.trainable_collates:
            indices = torch.tensor([index for index, _ in items])
            _, objects, _ = split_samples([sample for _, sample in items])
            features = {name: collate(objects) for name, collate in self.trainable_collates.items()}
        else:
            indices = torch.tensor(items)
        stored = {key: value[indices] for key, value in cache.targets.items()}
        if cache.kind == "pair":
            rows = torch.stack([2 * indices, 2 * indices + 1], dim=1).view(-1)
            targets = pair_targets(stored["scores"], stored["subgroups"])
        else:
            rows = indices
            targets = {"groups": stored["groups"]}
        views = torch.randint(cache.num_views, (len(rows),)) if cache.num_views > 1 else torch.zeros_like(rows)
        keys = torch.stack([views, rows], dim=1)
        features |= {name: keys for name in self.cached_names}
        return features, targets


def cached_dataloader(original: DataLoader, items: CachedItems, collate: CachedCollate) -> DataLoader:
    """Same batches as ``original`` (same sampler state, shuffle, class balancing), read from the cache."""
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
        raise ValueError("train/val dataloader has batch_size=None; the cache needs batched loading")
    if type(original.batch_sampler) is BatchSampler:
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
