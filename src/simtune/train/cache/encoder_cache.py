"""The cache of one fit: which encoders are cached, per-split embeddings, fill-or-load, lookup."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset

from simtune.models.encoders.base import Encoder
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.encode_or_load import load_or_fill
from simtune.train.cache.storage import CachedEmbeddings


class EncoderCache:
    """Frozen encoders' embeddings for each split ("train", "val") of one fit, through ``load_or_fill``
    (what ``encode_or_load`` runs), on the training device."""

    def __init__(self, config: CacheConfig, encoders: Mapping[str, Encoder], datasets: Mapping[str, Dataset]):
        self.config = config
        self.encoders = dict(encoders)
        self.datasets = dict(datasets)
        self._caches: dict[str, CachedEmbeddings] = {}

    def prepare(self, device: torch.device, is_global_zero: bool = True) -> None:
        """Every process calls this together: under DDP the ranks encode a shard each, all receive the
        whole table, and only the global-zero process writes it and shows progress."""
        for split, dataset in self.datasets.items():
            self._caches[split] = load_or_fill(
                self.encoders, dataset, self.config, split, device, save=is_global_zero, progress=is_global_zero
            )

    def get(self, split: str) -> CachedEmbeddings:
        try:
            return self._caches[split]
        except KeyError:
            raise RuntimeError(f"the {split} cache is read before it was filled; fit() fills it in setup") from None

    def lookup(self, split: str, name: str, keys: Tensor, device: torch.device) -> Tensor:
        """(B, 2) ``[view, row]`` keys -> (B, D) float32 embeddings on ``device``."""
        table = self.get(split).embeddings[name]
        keys = keys.to(table.device)
        return table[keys[:, 0], keys[:, 1]].to(device=device, dtype=torch.float32, non_blocking=True)

    def nbytes(self) -> int:
        return sum(cache.nbytes() for cache in self._caches.values())
