"""A cache entry held in memory (no cache folder): the same filling interface as ``CacheEntry``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import Tensor

from simtune.train.cache.storage import CachedEmbeddings, Layout


class MemoryEntry:
    """Embeddings in ``layout``'s dtype on ``device``, filled row by row; targets on the CPU."""

    def __init__(self, layout: Layout, device: torch.device):
        self.layout = layout
        self.device = device
        self.precision = ""
        self.embeddings: dict[str, Tensor] = {}
        self.targets: dict[str, Tensor] = {}

    def start(self, kind: str) -> None:
        """Allocates the tables once the kind of items (rows per item) is known."""
        if self.embeddings:
            return
        self.layout = replace(self.layout, kind=kind)
        dtype = getattr(torch, self.layout.dtype)
        self.embeddings = {
            name: torch.empty((self.layout.views, self.layout.rows, width), dtype=dtype, device=self.device)
            for name, width in self.layout.widths.items()
        }

    def missing(self, view: int) -> list[int]:
        return list(range(self.layout.items))

    def write(self, view: int, positions: Tensor, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> None:
        per_item = self.layout.rows_per_item
        rows = (positions[:, None] * per_item + torch.arange(per_item)).reshape(-1)
        for name, output in outputs.items():
            table = self.embeddings[name][view]
            table[rows.to(table.device)] = output.to(table.device, table.dtype, non_blocking=True)
        for key, value in targets.items():
            if key not in self.targets:
                self.targets[key] = torch.zeros(self.layout.items, dtype=value.dtype)
            self.targets[key][positions] = value

    def finish(self) -> CachedEmbeddings:
        if any(e.is_cuda for e in self.embeddings.values()):
            torch.cuda.synchronize()
        return CachedEmbeddings(self.layout.kind, self.embeddings, self.targets, dict(self.layout.fingerprint))
