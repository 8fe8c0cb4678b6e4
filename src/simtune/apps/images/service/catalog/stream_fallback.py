"""A stand-in for the shared streaming batch encoder, with its signature, until that one is available."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


@dataclass
class EncodedBatch:
    indices: Tensor
    outputs: Any
    extras: Any = None


class _Positions(Dataset):
    def __init__(self, items: Dataset, order: list[int]):
        self.items, self.order = items, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        return self.order[k], self.items[self.order[k]]


class _WorkerCollate:
    def __init__(self, collate: Callable[[list[Any]], Any], extras: Callable[[list[Any]], Any] | None):
        self.collate, self.extras = collate, extras

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[Tensor, Any, Any]:
        items = [item for _, item in pairs]
        positions = torch.tensor([p for p, _ in pairs], dtype=torch.long)
        return positions, self.collate(items), self.extras(items) if self.extras else None


def encode_batches(
    forward: Callable[[Any], Any],
    items: Dataset,
    collate: Callable[[list[Any]], Any],
    *,
    indices: list[int] | None = None,
    extras: Callable[[list[Any]], Any] | None = None,
    batch_size: int = 16,
    num_workers: int | None = None,
    progress: bool = False,
    desc: str = "encoding",
) -> Iterator[EncodedBatch]:
    order = list(range(len(items))) if indices is None else list(indices)
    loader = DataLoader(
        _Positions(items, order),
        batch_size=batch_size,
        num_workers=num_workers or 0,
        collate_fn=_WorkerCollate(collate, extras),
    )
    module = forward if isinstance(forward, nn.Module) else None
    if module is not None:
        module.eval()
    with tqdm(total=len(order), desc=desc, unit="item", disable=not progress) as bar:
        for positions, inputs, batch_extras in loader:
            with torch.inference_mode():
                outputs = forward(inputs)
            yield EncodedBatch(positions, outputs.float().cpu(), batch_extras)
            bar.update(len(positions))
