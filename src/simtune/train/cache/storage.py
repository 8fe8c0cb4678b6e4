"""Cached embeddings in memory and on disk (safetensors + JSON, written atomically).

On disk one cache is a folder ``<save_dir>/<name>-<digest[:16]>/`` holding ``embeddings.safetensors``
and ``meta.json``. The folder is built under a staging name and swapped into place only when complete
(:mod:`simtune.atomic`), so a process killed mid-write never leaves a folder that is later trusted.

Entries are found by fingerprint, whatever their name: training, evaluation and indexing that encode the
same items with the same encoders share one entry. The name only groups versions: saving a new entry
removes the older ones of that name, which a changed encoder or data set made stale.
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
    needs, so a fully frozen model never reads its dataset again. ``kind`` is "group" (targets
    ``groups``), "pair" (a pair item owns rows 2i and 2i+1; targets ``scores``, ``subgroups``) or
    "object" (unlabelled objects, no targets). Row i belongs to dataset item i. Targets stay on the CPU."""

    kind: str
    embeddings: dict[str, Tensor]
    targets: dict[str, Tensor]
    fingerprint: dict[str, str]

    @property
    def num_items(self) -> int:
        rows = next(iter(self.embeddings.values())).shape[1]
        return rows // 2 if self.kind == "pair" else rows

    @property
    def num_views(self) -> int:
        return next(iter(self.embeddings.values())).shape[0]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in [*self.embeddings.values(), *self.targets.values()])

    def embeddings_to(self, device: torch.device) -> CachedEmbeddings:
        embeddings = {name: e.to(device) for name, e in self.embeddings.items()}
        return CachedEmbeddings(self.kind, embeddings, self.targets, self.fingerprint)

    def features(self, view: int = 0) -> Tensor:
        """(rows, sum of encoder sizes) float32: the encoders' outputs concatenated in sorted-name order,
        exactly what ``SimilarityModel.encoder_outputs`` gives and its head consumes."""
        if not 0 <= view < self.num_views:
            raise IndexError(f"view {view} out of range: the cache holds {self.num_views} view(s)")
        return torch.cat([self.embeddings[name][view].float() for name in sorted(self.embeddings)], dim=1)


def _folder(save_dir: Path, name: str, fingerprint: dict[str, str]) -> Path:
    return save_dir / f"{name}-{fingerprint_digest(fingerprint)[:16]}"


def _find(save_dir: Path, name: str, fingerprint: dict[str, str]) -> Path | None:
    """This fingerprint's folder: under ``name`` first, else under any name (another caller filled it)."""
    own = _folder(save_dir, name, fingerprint)
    if own.is_dir():
        return own
    digest = fingerprint_digest(fingerprint)[:16]
    return next((f for f in sorted(save_dir.glob(f"*-{digest}")) if f.is_dir() and not f.name.startswith(".")), None)


def save_cache(save_dir: Path, name: str, cache: CachedEmbeddings) -> Path:
    """Written through :func:`simtune.atomic.replace_directory`: a crash at any point keeps the cache that
    was there (or none); older entries named ``name`` are removed once the new one is in place."""
    final = _folder(save_dir, name, cache.fingerprint)
    with replace_directory(final) as staging:
        tensors = {_EMBEDDING_PREFIX + k: v.contiguous().cpu() for k, v in cache.embeddings.items()}
        tensors |= {_TARGET_PREFIX + k: v.contiguous().cpu() for k, v in cache.targets.items()}
        save_file(tensors, str(staging / _EMBEDDINGS))
        meta = {"kind": cache.kind, "name": name, "fingerprint": cache.fingerprint}
        (staging / _META).write_text(json.dumps(meta, indent=1, sort_keys=True))
    for other in save_dir.glob(f"{name}-*"):
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return final


def _read_meta(folder: Path) -> dict | None:
    try:
        return json.loads((folder / _META).read_text())
    except (OSError, ValueError):
        return None


def load_cache(save_dir: Path, name: str, fingerprint: dict[str, str], num_items: int) -> CachedEmbeddings | None:
    """The saved cache for exactly this fingerprint, or None; a stale or broken one is reported in one line."""
    folder = _find(save_dir, name, fingerprint) if save_dir.is_dir() else None
    meta = _read_meta(folder) if folder is not None else None
    if meta is None:
        stale = [m for m in map(_read_meta, sorted(save_dir.glob(f"{name}-*"))) if m]
        if stale:
            log.warning(
                "simtune cache: %s cache in %s is stale (%s changed); rebuilding",
                name,
                save_dir,
                describe_mismatch(stale[-1]["fingerprint"], fingerprint),
            )
        return None
    try:
        if meta["fingerprint"] != fingerprint:
            raise ValueError(f"{describe_mismatch(meta['fingerprint'], fingerprint)} changed")
        tensors = load_file(str(folder / _EMBEDDINGS))
        cache = CachedEmbeddings(
            kind=meta["kind"],
            embeddings={k[len(_EMBEDDING_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_EMBEDDING_PREFIX)},
            targets={k[len(_TARGET_PREFIX) :]: v for k, v in tensors.items() if k.startswith(_TARGET_PREFIX)},
            fingerprint=meta["fingerprint"],
        )
        rows = num_items * (2 if cache.kind == "pair" else 1)
        if cache.num_items != num_items or any(e.shape[1] != rows for e in cache.embeddings.values()):
            raise ValueError(f"holds {cache.num_items} items, the dataset has {num_items}")
    except (OSError, ValueError, KeyError, StopIteration, SafetensorError) as error:
        log.warning("simtune cache: %s cache in %s is unusable (%s); rebuilding", name, folder, error)
        return None
    return cache
