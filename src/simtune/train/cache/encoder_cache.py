"""The cache of one fit: which encoders are cached, per-split embeddings, fill-or-load, lookup."""

from __future__ import annotations

import logging
from typing import Callable, Mapping

import torch
from torch import Tensor
from torch.utils.data import Dataset

from simtune.models.encoders.base import Encoder
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.fill import fill_cache
from simtune.train.cache.fingerprint import cache_fingerprint, has_item_keys
from simtune.train.cache.storage import CachedEmbeddings, load_cache, save_cache

log = logging.getLogger(__name__)


class EncoderCache:
    """Frozen encoders' embeddings for each split ("train", "val"), filled once per fit on the training
    device. Under DDP with a ``save_dir``, rank 0 fills and saves while the others wait, then load."""

    def __init__(self, config: CacheConfig, encoders: Mapping[str, Encoder], datasets: Mapping[str, Dataset]):
        self.config = config
        self.encoders = dict(encoders)
        self.datasets = dict(datasets)
        self._caches: dict[str, CachedEmbeddings] = {}

    def prepare(self, device: torch.device, is_global_zero: bool = True, barrier: Callable[[], None] | None = None) -> None:
        storage = self.config.storage_device(device)
        shared = self.config.save_dir is not None and barrier is not None
        if shared and not is_global_zero:
            barrier()
        for split, dataset in self.datasets.items():
            fingerprint = cache_fingerprint(self.encoders, dataset, self.config.views, self.config.dtype)
            cache = None
            if self.config.save_dir is not None:
                if not has_item_keys(dataset) and is_global_zero:
                    log.warning(
                        "simtune cache: %s dataset %s has no cache_key(i); its saved cache is matched by length "
                        "only, so edits that keep the length go unnoticed",
                        split, type(dataset).__name__,
                    )
                cache = load_cache(self.config.save_dir, split, fingerprint, len(dataset))
            if cache is None:
                cache = fill_cache(dataset, self.encoders, self.config, device, storage, fingerprint, split)
                if self.config.save_dir is not None and is_global_zero:
                    save_cache(self.config.save_dir, split, cache)
            self._caches[split] = cache.embeddings_to(storage)
        if shared and is_global_zero:
            barrier()

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
