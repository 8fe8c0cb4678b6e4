"""The images a sync must embed, decoded in worker processes, and the model's batches over them.

Each image is decoded as a query image is (``load_query_image``: the same limits, the same shrinking),
so a photo searched for finds its own point with the same vector. An image that cannot be decoded
becomes a blank stand-in with its error beside it: every batch keeps its length, and the caller drops
those rows and reports the files.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import Dataset

from simtune.devices import select_device
from simtune.encoding import encode_batches
from simtune.search import Embedder, SearchError
from simtune.search.query_image import DEFAULT_MAX_PIXELS, load_query_image

# A catalog's photos may be far larger than an upload; the pixel limit (decompression bombs) still holds.
MAX_FILE_BYTES = 200 * 2**20
_STAND_IN_SIDE = 8


class CatalogImages(Dataset):
    """The to-do list of a ``SyncPlan`` database, item ``k`` -> ``(image, error)``; opened per process."""

    def __init__(self, db_path: str | Path, count: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.db_path = str(db_path)
        self.count = count
        self.max_pixels = max_pixels
        self._db: sqlite3.Connection | None = None

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, position: int) -> tuple[Image.Image, str | None]:
        if self._db is None:  # one connection per worker process, opened there
            self._db = sqlite3.connect(self.db_path)
        (path,) = self._db.execute("SELECT path FROM todo WHERE seq = ?", (position + 1,)).fetchone()
        try:
            return load_query_image(path, MAX_FILE_BYTES, self.max_pixels), None
        except (SearchError, OSError) as error:
            return Image.new("RGB", (_STAND_IN_SIDE, _STAND_IN_SIDE)), str(error)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_db": None}


class ImagesOnly:
    """Collate for ``(image, error)`` items: the model's own collate over the images (in the worker)."""

    def __init__(self, collate: Callable[[list[Any]], Any] | None) -> None:
        self.collate = collate

    def __call__(self, items: list[tuple[Image.Image, str | None]]) -> Any:
        images = [image for image, _ in items]
        return self.collate(images) if self.collate is not None else images


def errors_of(items: list[tuple[Image.Image, str | None]]) -> list[str | None]:
    return [error for _, error in items]


def model_pass(model: Embedder) -> tuple[Callable[[Any], Tensor], Callable[[list[Any]], Any] | None]:
    """``(forward, collate)``: a torch model decodes and preprocesses in the workers and runs on batches;
    any other ``Embedder`` receives the decoded images through its ``encode``."""
    if isinstance(model, nn.Module) and hasattr(model, "get_collate_fn"):
        return model, model.get_collate_fn()

    def encode(images: list[Image.Image]) -> Tensor:
        return torch.from_numpy(np.asarray(model.encode(images, batch_size=len(images), to_numpy=True)))

    return encode, None


def embedded_batches(
    model: Embedder,
    images: CatalogImages,
    batch_size: int,
    workers: int,
    progress: bool,
    positions: list[int] | None = None,
    device: str = "auto",
) -> Iterator[tuple[list[int], np.ndarray, list[str | None]]]:
    """``(positions, vectors, errors)`` batch by batch (of ``positions``, default all): vectors of the rows
    whose error is None are real. A torch model runs on ``device`` (``auto``: the GPU when there is one;
    mixed precision where the device computes it natively), through the shared streaming encoder."""
    forward, collate = model_pass(model)
    target = select_device(device)
    if isinstance(forward, nn.Module):
        forward.to(target)
    for batch in encode_batches(
        forward,
        images,
        ImagesOnly(collate),
        indices=positions,
        extras=errors_of,
        batch_size=batch_size,
        num_workers=workers,
        device=target if isinstance(forward, nn.Module) else "cpu",
        precision="auto",
        progress=progress,
        desc="embedding images",
    ):
        outputs = batch.outputs
        if not isinstance(outputs, Tensor):
            raise TypeError(f"the model returned {type(outputs).__name__}, not one tensor of embeddings")
        yield batch.indices.tolist(), outputs.numpy(), batch.extras
