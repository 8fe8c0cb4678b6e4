"""Decoding and resizing images into a normalised float batch, shared by the image encoders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from simtune.image_modes import to_rgb


class ImageCollate:
    """``list[PIL.Image | str | Path] -> Tensor (B, 3, size, size)`` of ``(pixel - mean) / std``.

    ``mean`` and ``std`` are in 0-255 pixel units. Images are resized to a square (no crop): the cars
    set is already cropped to its boxes. A class instance rather than a closure so DataLoader workers
    can pickle it.
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.image_size = image_size
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)

    def __call__(self, images: list[Any]) -> Tensor:
        if not images:
            raise ValueError("cannot collate an empty list of images")
        pixels = np.stack([self.load(image, index) for index, image in enumerate(images)])
        # One strided copy to contiguous float NCHW, then in-place: numpy does this several times faster
        # than the equivalent torch ops on a busy CPU (no thread pool), and the collate runs per batch.
        batch = pixels.transpose(0, 3, 1, 2).astype(np.float32, order="C")
        batch -= self.mean
        batch /= self.std
        return torch.from_numpy(batch)

    def load(self, image: Any, index: int = 0) -> np.ndarray:
        """One image as a ``(size, size, 3)`` uint8 array."""
        from PIL import Image

        size = (self.image_size, self.image_size)
        if isinstance(image, (str, Path)):
            try:
                with Image.open(image) as opened:
                    opened.draft("RGB", size)  # JPEG: decode at a reduced scale when the file is much larger
                    return self._resized(opened, size)
            except (OSError, Image.DecompressionBombError) as error:
                raise ValueError(f"image {index} ({image}): cannot be read as an image ({error})") from None
            except ValueError as error:
                raise ValueError(f"image {index} ({image}): {error}") from None
        if isinstance(image, Image.Image):
            try:
                return self._resized(image, size)
            except ValueError as error:
                raise ValueError(f"image {index}: {error}") from None
        if hasattr(image, "shape"):  # a tensor or array: the dataset applied its own transforms
            raise TypeError(
                f"image {index}: expected a PIL image or a file path, got an already transformed "
                f"{type(image).__name__} of shape {tuple(image.shape)}. simtune's image encoders do their own "
                "preprocessing (resize, normalisation) in get_collate_fn(), so the dataset should yield the "
                "untransformed images (or their paths); drop the transforms. To feed your own tensors, use an "
                "Encoder subclass whose get_collate_fn() stacks them (the Encoder default, default_collate)"
            )
        raise TypeError(f"image {index}: expected a PIL image or a file path, got {type(image).__name__}")

    @staticmethod
    def _resized(image: Any, size: tuple[int, int]) -> np.ndarray:
        from PIL import Image

        image = to_rgb(image)
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(image)
