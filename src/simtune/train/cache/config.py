"""What to cache and where: the user-facing knobs of the frozen-encoder embedding cache."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch

from simtune.encoding import default_workers
from simtune.encoding.precision import check_precision


class CacheType(str, Enum):
    """Where cached embeddings live. AUTO = on the training device (GPU when training on one)."""

    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"
    NONE = "none"


_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class CacheConfig:
    """Cache the outputs of frozen encoders so each object is encoded once, not once per epoch.

    ``save_dir`` persists the cache (safetensors + JSON) between runs; ``views`` > 1 stores that many
    passes of the frozen encoder (e.g. under random augmentation) and samples one per item per epoch.
    ``num_workers``: loader processes that read and decode items (images) while the encoder runs on the
    previous batch; ``None`` picks as many as the CPU allows (up to 4), 0 decodes in the main process.
    ``batch_size`` is small by default because on a CPU large batches' activations fall out of the
    allocator's reuse and encode slower (about half the rate at 64 as at 16); raise it on a GPU.
    ``precision``: the arithmetic of the encoding pass (:mod:`simtune.encoding.precision`): ``"auto"``
    is mixed precision where the device computes it natively, else float32; stored values are float32
    rounded to ``dtype`` whichever. ``chunk_items``: a saved cache is written (and checksummed) in
    chunks of this many items, so an interrupted fill loses at most one chunk per process.
    """

    cache_type: CacheType | str = CacheType.AUTO
    save_dir: str | Path | None = None
    batch_size: int = 16
    num_workers: int | None = None
    dtype: str = "float32"
    views: int = 1
    precision: str = "float32"
    chunk_items: int = 512

    def __post_init__(self) -> None:
        try:
            self.cache_type = CacheType(self.cache_type)
        except ValueError:
            raise ValueError(
                f"CacheConfig.cache_type={self.cache_type!r}; expected one of {[t.value for t in CacheType]}"
            ) from None
        if self.dtype not in _DTYPES:
            raise ValueError(f"CacheConfig.dtype={self.dtype!r}; expected one of {sorted(_DTYPES)}")
        for name in ("batch_size", "views", "chunk_items"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"CacheConfig.{name}={getattr(self, name)!r}; expected an int >= 1")
        if self.num_workers is not None and (not isinstance(self.num_workers, int) or self.num_workers < 0):
            raise ValueError(f"CacheConfig.num_workers={self.num_workers!r}; expected None (automatic) or an int >= 0")
        check_precision(self.precision)
        if self.save_dir is not None:
            self.save_dir = Path(self.save_dir)

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def workers_for(self, num_batches: int) -> int:
        """Decoding overlaps the forward pass only with worker processes; one batch has nothing to overlap."""
        return default_workers(num_batches, self.num_workers)

    def storage_device(self, training_device: torch.device) -> torch.device:
        """AUTO keeps embeddings next to the model; GPU without a GPU is an error, not a silent CPU cache."""
        if self.cache_type == CacheType.CPU:
            return torch.device("cpu")
        if self.cache_type == CacheType.GPU:
            if training_device.type != "cuda":
                raise ValueError(f"CacheConfig.cache_type=GPU but training runs on {training_device}; use AUTO or CPU")
            return training_device
        return training_device if training_device.type == "cuda" else torch.device("cpu")
