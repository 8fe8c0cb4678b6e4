"""A sampler turns a dataset into a retrieval task: what to encode, who queries, what is relevant."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class RetrievalTask:
    """Objects are encoded once; queries and gallery are rows of those objects' embeddings.

    Exactly one of ``groups`` (relevant = same group) and ``relevant_pairs`` (relevant = listed as
    (query position, gallery position)) is set. ``query_gallery_index[i]`` is query i's own gallery
    position (excluded from its results) or -1; ``excluded_pairs`` are further (query, gallery)
    positions kept out of the ranking (pair tasks put the self-exclusion there too).
    """

    objects: list[Any]
    query_rows: Tensor
    gallery_rows: Tensor
    query_gallery_index: Tensor
    groups: Tensor | None = None
    relevant_pairs: Tensor | None = None
    excluded_pairs: Tensor | None = None


class Sampler(ABC):
    """Subclass and implement ``sample``.

    ``encode_batch_size``, ``device`` (where the ranking runs) and ``log_progress`` tell the
    ``Evaluator`` how to encode and rank what was sampled; they are Quaterion's sampler arguments.
    """

    encode_batch_size: int = 32
    device: str | torch.device | None = None
    log_progress: bool = True

    def _set_encoding_options(
        self, encode_batch_size: int, device: str | torch.device | None, log_progress: bool
    ) -> None:
        if isinstance(encode_batch_size, bool) or not isinstance(encode_batch_size, int) or encode_batch_size < 1:
            raise ValueError(f"encode_batch_size must be a positive integer, got {encode_batch_size!r}")
        self.encode_batch_size = encode_batch_size
        self.device = device
        self.log_progress = bool(log_progress)

    @abstractmethod
    def sample(self, dataset: Sequence, gallery_dataset: Sequence | None = None) -> RetrievalTask: ...


def check_sample_size(sample_size: int) -> int:
    if isinstance(sample_size, bool) or not isinstance(sample_size, int) or not (sample_size == -1 or sample_size > 0):
        raise ValueError(f"sample_size must be -1 (everything) or a positive integer, got {sample_size!r}")
    return sample_size


def choose(count: int, sample_size: int, seed: int) -> Tensor:
    """``sample_size`` of ``range(count)`` (all when -1 or when there are fewer), seeded, sorted."""
    if sample_size == -1 or sample_size >= count:
        return torch.arange(count)
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(count, generator=generator)[:sample_size].sort().values


def items_of(dataset: Sequence, kind: type, name: str) -> list:
    items = [dataset[i] for i in range(len(dataset))]
    if not items:
        raise ValueError(f"{name} is empty")
    wrong = next((item for item in items if not isinstance(item, kind)), None)
    if wrong is not None:
        raise TypeError(f"{name} must yield {kind.__name__} items, got {type(wrong).__name__}")
    return items
