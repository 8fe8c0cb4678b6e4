"""The collate of a loader over cache keys (``simtune.train.indexed_loaders.rebuild_dataloader``).

Batches keep the training format ``(features, targets)``; a cached encoder's feature is a (B, 2)
tensor of ``[view, row]`` keys that the model resolves against the cache on its own device, so the
loader stays cheap, picklable, and valid under DDP's sampler injection. With every encoder cached the
dataset is never read: the targets come from the cache too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from simtune.train.cache.fill import split_samples
from simtune.train.cache.storage import CachedEmbeddings


def pair_targets(scores: Tensor, subgroups: Tensor) -> dict[str, Tensor]:
    """Pair items laid out as rows (a0, b0, a1, b1, ...): the pair-loss targets for those rows."""
    pairs = torch.arange(2 * len(scores)).view(-1, 2)
    return {"pairs": pairs, "labels": scores.float(), "subgroups": subgroups.repeat_interleave(2)}


class CachedCollate:
    """``IndexedItems`` -> (features, targets + {"indices"}); trainable encoders get their usual collated input."""

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
        return features, targets | {"indices": indices}
