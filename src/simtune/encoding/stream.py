"""``encode_batches``: the one streaming batch encoder behind the feature cache, indexing and ``encode``.

Items are read and decoded by DataLoader worker processes while the model runs on the previous batch
(pinned batches on a GPU), so the model rarely waits for the decoder; what the model gives each batch
is yielded at once, in float32 on the CPU, so a caller writes it away (a cache chunk, index points) and
nothing grows with the collection. An out-of-memory error (a GPU's, typically) splits the batch and
retries, then keeps the smaller size for the batches that follow, saying so in one log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from simtune.encoding.precision import inference_context

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 4


@dataclass
class EncodedBatch:
    """``indices``: the items' positions in the dataset; ``outputs``: the model's float32 CPU result
    (a tensor, or a mapping of them), rows in the order of ``indices``; ``extras``: what the ``extras``
    function computed from the same items in the worker (e.g. their labels), else None."""

    indices: Tensor
    outputs: Tensor | dict[str, Tensor]
    extras: Any = None


def default_workers(num_batches: int, requested: int | None = None) -> int:
    """Decoding overlaps the forward pass only in worker processes; one batch has nothing to overlap.
    ``None``: as many as the CPU allows, up to ``MAX_AUTO_WORKERS``."""
    if requested is not None:
        return requested
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(MAX_AUTO_WORKERS, cpus, num_batches - 1))


def encode_batches(
    forward: Callable[[Any], Tensor | Mapping[str, Tensor]],
    items: Dataset | Sequence[Any],
    collate: Callable[[list[Any]], Any],
    *,
    indices: Sequence[int] | None = None,
    extras: Callable[[list[Any]], Any] | None = None,
    batch_size: int = 16,
    num_workers: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    progress: bool = False,
    desc: str = "encoding",
) -> Iterator[EncodedBatch]:
    """Yields ``forward(collate(batch of items))`` batch by batch, with the batch's item positions.

    ``forward``: the model (an ``nn.Module`` is put in eval mode for the pass and given back as it was;
    it must already be on ``device``) or any function of a collated batch. ``collate`` turns a list of
    items into the model's input; it runs in the workers, as does ``extras`` (labels, say) on the same
    items. ``indices``: which items, in this order (default all): a resumed or sharded pass encodes
    only its part. ``precision``: ``"auto"`` (mixed precision where the device computes it natively,
    see :mod:`simtune.encoding.precision`), ``"float32"``, ``"bfloat16"`` or ``"float16"``; results
    are float32 whichever. ``num_workers``: decoding processes, ``None`` for automatic, 0 to decode
    in this process. An out-of-memory error retries the batch in halves (and keeps the smaller size).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device)
    order = list(range(len(items))) if indices is None else [int(i) for i in indices]
    if not order:
        return
    num_batches = -(-len(order) // batch_size)
    loader = DataLoader(
        _Positions(items, order),
        batch_size=batch_size,
        num_workers=default_workers(num_batches, num_workers),
        collate_fn=_WorkerCollate(collate, extras),
        pin_memory=device.type == "cuda",
    )
    module = forward if isinstance(forward, nn.Module) else None
    was_training = module.training if module is not None else False
    if module is not None:
        module.eval()
    rows_limit = _RowsLimit()
    try:
        with tqdm(total=len(order), desc=desc, unit="item", disable=not progress) as bar:
            for positions, inputs, batch_extras in loader:
                inputs = to_device(inputs, device)
                outputs = _forward_with_retry(forward, inputs, device, precision, rows_limit)
                yield EncodedBatch(positions, outputs, batch_extras)
                bar.update(len(positions))
    finally:
        if module is not None:
            module.train(was_training)


def to_device(batch: Any, device: torch.device) -> Any:
    """Every tensor in a (nested) batch moved to ``device``; anything else left as it is."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


class _Positions(Dataset):
    """Item ``order[k]`` with its position, so every batch knows which items it holds."""

    def __init__(self, items: Dataset | Sequence[Any], order: list[int]):
        self.items = items
        self.order = order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> tuple[int, Any]:
        return self.order[k], self.items[self.order[k]]


class _WorkerCollate:
    """(position, item) pairs -> (positions, model input, extras); a class, so workers can pickle it."""

    def __init__(self, collate: Callable[[list[Any]], Any], extras: Callable[[list[Any]], Any] | None):
        self.collate = collate
        self.extras = extras

    def __call__(self, pairs: list[tuple[int, Any]]) -> tuple[Tensor, Any, Any]:
        positions = torch.tensor([position for position, _ in pairs], dtype=torch.long)
        items = [item for _, item in pairs]
        return positions, self.collate(items), self.extras(items) if self.extras is not None else None


class _RowsLimit:
    """The largest input a forward pass may take, lowered by each out-of-memory error."""

    def __init__(self) -> None:
        self.rows: int | None = None


def _forward_with_retry(
    forward: Callable[[Any], Any], inputs: Any, device: torch.device, precision: str, limit: _RowsLimit
) -> Tensor | dict[str, Tensor]:
    rows = _rows(inputs)
    while True:
        size = rows if limit.rows is None else min(rows, limit.rows)
        try:
            parts = [
                _run(forward, _rows_slice(inputs, start, start + size), device, precision)
                for start in range(0, rows, size)
            ]
            return _concat(parts)
        except torch.OutOfMemoryError:
            if size <= 1 or rows is None:
                raise
            limit.rows = size // 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning(
                "simtune: out of %s memory encoding %d rows at once; retrying %d at a time", device, size, limit.rows
            )


def _run(forward: Callable[[Any], Any], inputs: Any, device: torch.device, precision: str) -> Any:
    with inference_context(device, precision):
        outputs = forward(inputs)
    if isinstance(outputs, Tensor):
        return outputs.to("cpu", torch.float32)
    if isinstance(outputs, Mapping):
        return {name: value.to("cpu", torch.float32) for name, value in outputs.items()}
    raise TypeError(f"the model returned {type(outputs).__name__}; expected a tensor or a mapping of tensors")


def _rows(inputs: Any) -> int | None:
    """The leading size shared by every tensor (or list) in ``inputs``; None when it cannot be split."""
    if isinstance(inputs, Tensor):
        return len(inputs) if inputs.dim() else None
    if isinstance(inputs, Mapping):
        sizes = {_rows(value) for value in inputs.values()}
    elif isinstance(inputs, (list, tuple)) and inputs and all(isinstance(v, (Tensor, Mapping)) for v in inputs):
        sizes = {_rows(value) for value in inputs}
    elif isinstance(inputs, list):
        return len(inputs)
    else:
        return None
    return sizes.pop() if len(sizes) == 1 else None


def _rows_slice(inputs: Any, start: int, stop: int) -> Any:
    if start == 0 and stop >= (_rows(inputs) or 0):
        return inputs
    if isinstance(inputs, Tensor):
        return inputs[start:stop]
    if isinstance(inputs, Mapping):
        return {key: _rows_slice(value, start, stop) for key, value in inputs.items()}
    if isinstance(inputs, tuple) or (inputs and all(isinstance(v, (Tensor, Mapping)) for v in inputs)):
        return type(inputs)(_rows_slice(value, start, stop) for value in inputs)
    return inputs[start:stop]


def _concat(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], Tensor):
        return torch.cat(parts)
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
