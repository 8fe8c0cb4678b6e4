"""Cached embeddings in memory and on disk (safetensors + JSON, written atomically).

On disk one cache is a folder ``<save_dir>/<split>-<digest[:16]>/`` holding ``embeddings.safetensors``
and ``meta.json``. The folder is built under a staging name and swapped into place only when complete
(:mod:`simtune.atomic`), so a process killed mid-write never leaves a folder that is later trusted.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from simtune.atomic import replace_directory
from simtune.train.cache.fingerprint import describe_mismatch, fingerprint_digest

log = logging.getLogger(__name__)

_EMBEDDINGS = "embeddings.safetensors"
_META = "meta.json"
_EMBEDDING_PREFIX = "embedding."
_TARGET_PREFIX = "target."


@dataclass
class CachedEmbeddings:
    """``embeddings[encoder]``: (views, rows, dim); ``targets[name]``: (items,) — everything training
    needs, so a fully frozen model never reads its dataset again. ``kind`` is "group" or "pair"
    (a pair item owns rows 2i and 2i+1). Targets stay on the CPU."""

    kind: str
    embeddings: dict[str, Tensor]
    targets: dict[str, Tensor]
    fingerprint: dict[str, str]

    @property
    def num_items(self) -> int:
        return len(next(iter(self.targets.values())))

    @property
    def num_views(self) -> int:
        return next(iter(self.embeddings.values())).shape[0]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.embeddings.values(), *self.targets.values()])

    def embeddings_to(self, device: torch.device) -> "CachedEmbeddings":
        embeddings = {name: e.to(device) for name, e in self.embeddings.items()}
        return CachedEmbeddings(self.kind, embeddings, self.targets, self.fingerprint)


def _folder(save_dir: Path, split: str, fingerprint: dict[str, str]) -> Path:
    return save_dir / f"{split}-{fingerprint_digest(fingerprint)[:16]}"


def save_cache(save_dir: Path, split: str, cache: CachedEmbeddings) -> Path:
    """Written through :func:`simtune.atomic.replace_directory`: a crash at any point keeps the cache that
    was there (or none); stale caches of ``split`` are removed once the new one is in place."""
    final = _folder(save_dir, split, cache.fingerprint)
    with replace_directory(final) as staging:
        tensors = {_EMBEDDING_PREFIX + k: v.contiguous().cpu() for k, v in cache.embeddings.items()}
        tensors |= {_TARGET_PREFIX + k: v.contiguous().cpu() for k, v in cache.targets.items()}
        save_file(tensors, str(staging / _EMBEDDINGS))
        meta = {"kind": cache.kind, "split": split, "fingerprint": cache.fingerprint}
        (staging / _META).write_text(json.dumps(meta, indent=1, sort_keys=True))
    for other in save_dir.glob(f"{split}-*"):
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return final


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _META).read_text())
    except (OSError, ValueError):
        return None


def load_cache(save_dir: Path, split: str, fingerprint: dict[str, str], num_items: int) -> CachedEmbeddings | None:
    """The saved cache for exactly this fingerprint, or None; a stale or broken one is reported in one line."""
    folder = _folder(save_dir, split, fingerprint)
    meta = _read_meta(folder) if folder.is_dir() else None
    if meta is None:
        stale = [m for m in map(_read_meta, sorted(save_dir.glob(f"{split}-*"))) if m]
        if stale:
            log.warning(
                "simtune cache: %s cache in %s is stale (%s changed); rebuilding",
                split, save_dir, describe_mismatch(stale[-1]["fingerprint"], fingerprint),
            )
        return None
    try:
        if meta["fingerprint"] != fingerprint:
            raise ValueError(f"{describe_mismatch(meta['fingerprint'], fingerprint)} changed")
        tensors = load_file(str(folder / _EMBEDDINGS))
        cache = CachedEmbeddings(
            kind=meta["kind"],
            embeddings={k[len(_EMBEDDING_PREFIX):]: v for k, v in tensors.items() if k.startswith(_EMBEDDING_PREFIX)},
            targets={k[len(_TARGET_PREFIX):]: v for k, v in tensors.items() if k.startswith(_TARGET_PREFIX)},
            fingerprint=meta["fingerprint"],
        )
        rows = num_items * (2 if cache.kind == "pair" else 1)
        if cache.num_items != num_items or any(e.shape[1] != rows for e in cache.embeddings.values()):
            raise ValueError(f"holds {cache.num_items} items, the dataset has {num_items}")
    except (OSError, ValueError, KeyError, StopIteration, SafetensorError) as error:
        log.warning("simtune cache: %s cache in %s is unusable (%s); rebuilding", split, folder, error)
        return None
    return cache
