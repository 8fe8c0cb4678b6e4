"""``encode_or_load``: frozen encoders' outputs for a data set, encoded once and then read from disk.

The one entry point to the feature cache: ``fit`` (through ``CacheConfig``), evaluation and indexing
all call it, so the same items encoded by the same encoders are encoded once, whoever asks first.
``load_encoded`` is its read half alone (``store_encoded`` hands in outputs computed elsewhere).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from simtune.devices import select_device
from simtune.encoding import precision_name
from simtune.models.encoders.base import Encoder
from simtune.models.similarity_model import DEFAULT_ENCODER, SimilarityModel
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.fill import Picked, cache_layout, fill_cache, fill_together
from simtune.train.cache.fingerprint import cache_fingerprint, has_item_keys
from simtune.train.cache.memory_entry import MemoryEntry
from simtune.train.cache.sharded import agree, fill_sharded
from simtune.train.cache.storage import CachedEmbeddings, CacheEntry, load_cache, save_cache
from simtune.train.distributed import rank, world_size

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.]+$")


def encode_or_load(
    encoders: Any,
    dataset: Dataset | Sequence[Any],
    cache: str | Path | CacheConfig | None = None,
    *,
    name: str = "features",
    device: str | torch.device | None = None,
    progress: bool = True,
) -> CachedEmbeddings:
    """The outputs of ``encoders`` for every item of ``dataset``, from ``cache`` when it holds them.

    ``encoders``: an ``Encoder``, a ``{name: Encoder}`` mapping, or a ``SimilarityModel`` (its encoders).
    ``dataset``: ``SimilarityGroupSample``\\ s, ``SimilarityPairSample``\\ s or raw objects (image paths,
    texts), as a list or a ``Dataset``. ``cache``: a folder, a ``CacheConfig`` (folder, batch size,
    decoding workers, dtype, views), or None to encode without saving.

    Saved entries are found by fingerprint (encoder classes, configs and weights; every item's key), not
    by ``name``: anyone encoding the same items with the same encoders reads the same entry. ``name``
    only groups versions: a new entry removes older ones of its name (e.g. after the data changed).
    Returns ``CachedEmbeddings``; row ``i`` belongs to item ``i`` and ``.features()`` concatenates the
    encoders' outputs as ``SimilarityModel.encoder_outputs`` does.

    ``device``: where the encoders run, ``auto`` (None: the GPU when there is one), ``cpu``, ``cuda`` or
    ``cuda:N`` (:func:`simtune.devices.select_device`). Called by every process of a ``torch.distributed``
    group, the processes encode a shard each and all return the whole table.
    """
    config = as_cache_config(cache)
    target = select_device(device)
    return load_or_fill(as_encoder_dict(encoders), dataset, config, name, target, progress=progress)


def encode_or_load_together(
    encoders: Any,
    datasets: Mapping[str, Dataset],
    together: Dataset,
    cache: str | Path | CacheConfig,
    *,
    device: str | torch.device | None = None,
    progress: bool = True,
    precisions: Mapping[str, str] | None = None,
) -> dict[str, CachedEmbeddings]:
    """``{name: encode_or_load(encoders, dataset, cache, name=name)}`` for aligned data sets, encoded in
    one pass: ``together[i]`` is the tuple of item ``i`` of every data set (in ``datasets`` order), made
    at once, so what they share is read once (an image and its mirror image from one decode). Each data
    set keeps its own entry, the very one ``encode_or_load`` reads and writes. Entries already complete
    are read; the pass encodes the items any other lacks. Without a folder, with ``views`` > 1 or under
    ``torch.distributed`` the data sets are encoded one after the other, as ``encode_or_load`` does.
    ``precisions``: ``{name: precision}`` for data sets encoded in another arithmetic than the config's
    (say the views a head is trained on in float32, the rest in mixed precision)."""
    config = as_cache_config(cache)
    target = select_device(device)
    encoders = as_encoder_dict(encoders)
    sizes = {name: len(dataset) for name, dataset in datasets.items()}
    if not sizes or len(set(sizes.values()) | {len(together)}) != 1:
        raise ValueError(f"encode_or_load_together needs data sets as long as `together` ({len(together)}): {sizes}")
    unknown = sorted(set(precisions or {}) - set(datasets))
    if unknown:
        raise ValueError(f"encode_or_load_together: precisions name data sets it was not given: {unknown}")
    configs = {
        name: dataclasses.replace(config, precision=(precisions or {}).get(name, config.precision)) for name in datasets
    }
    if config.save_dir is None or config.views != 1 or world_size() > 1:
        return {
            name: load_or_fill(encoders, dataset, configs[name], name, target, progress=progress)
            for name, dataset in datasets.items()
        }
    storage = config.storage_device(target)
    found: dict[str, CachedEmbeddings] = {}
    entries: dict[str, CacheEntry] = {}
    try:
        for name, dataset in datasets.items():
            check_name(name)
            fingerprint = entry_fingerprint(encoders, dataset, configs[name], target)
            loaded = load_cache(config.save_dir, name, fingerprint, len(dataset), repair=True)
            if loaded is not None:
                found[name] = loaded
            else:
                layout = cache_layout(dataset, encoders, config, name, fingerprint)
                entries[name] = CacheEntry.create(Path(config.save_dir), layout)
        if entries:
            parts = [index for index, name in enumerate(datasets) if name in entries]
            items = Picked(together, parts)
            filled = fill_together(
                items,
                encoders,
                config,
                target,
                list(entries.values()),
                progress=progress,
                precisions=[configs[name].precision for name in entries],
            )
            found.update(zip(entries, filled))
    finally:
        for entry in entries.values():
            entry.close()
    return {name: found[name].embeddings_to(storage) for name in datasets}


def load_encoded(
    encoders: Any,
    dataset: Dataset | Sequence[Any],
    cache: str | Path | CacheConfig,
    *,
    name: str = "features",
    device: str | torch.device | None = None,
) -> CachedEmbeddings | None:
    """What ``encode_or_load`` would read from ``cache`` for these encoders and items, or None when it
    holds no complete, intact such entry; never encodes and never writes (e.g. reading another run's
    cache folder)."""
    config = as_cache_config(cache, needs_folder="load_encoded")
    check_name(name)
    target = select_device(device)
    encoders = as_encoder_dict(encoders)
    fingerprint = entry_fingerprint(encoders, dataset, config, target)
    found = load_cache(config.save_dir, name, fingerprint, len(dataset), repair=False)
    return None if found is None else found.embeddings_to(config.storage_device(target))


def load_or_fill(
    encoders: Mapping[str, Encoder],
    dataset: Dataset | Sequence[Any],
    config: CacheConfig,
    name: str,
    device: torch.device,
    save: bool = True,
    progress: bool = True,
) -> CachedEmbeddings:
    """``encode_or_load`` on resolved arguments; ``save=False`` for a caller that must not write.

    In one process, with a folder, the entry is read (verified) when complete; otherwise what it lacks is
    encoded and written chunk by chunk, so an interrupted fill resumes, and damaged chunks are encoded
    again. Under ``torch.distributed`` (several processes, e.g. DDP) every rank must call this together:
    the ranks encode a shard each and all receive the whole table (:mod:`simtune.train.cache.sharded`);
    rank 0 alone saves."""
    check_name(name)
    storage = config.storage_device(device)
    if len(dataset) == 0:
        raise ValueError(f"the {name} dataset is empty; nothing to cache")
    fingerprint = entry_fingerprint(encoders, dataset, config, device)
    found = None
    if config.save_dir is not None:
        if not has_item_keys(dataset) and save and rank() == 0:
            log.warning(
                "simtune cache: %s dataset %s has no cache_key(i); its saved cache is matched by length "
                "only, so edits that keep the length go unnoticed",
                name,
                type(dataset).__name__,
            )
        found = load_cache(config.save_dir, name, fingerprint, len(dataset), repair=save and rank() == 0)
    if agree(found is not None, device):
        return found.embeddings_to(storage)
    if world_size() == 1 and config.save_dir is not None and save:
        entry = CacheEntry.create(Path(config.save_dir), cache_layout(dataset, encoders, config, name, fingerprint))
        try:
            return fill_cache(dataset, encoders, config, device, entry, progress=progress).embeddings_to(storage)
        finally:
            entry.close()

    def fill_in_memory(items: Dataset, shown: bool) -> CachedEmbeddings:
        entry = MemoryEntry(cache_layout(items, encoders, config, name, fingerprint), storage)
        return fill_cache(items, encoders, config, device, entry, progress=progress and shown)

    found = fill_sharded(dataset, config.batch_size, device, storage, fill_in_memory)
    if config.save_dir is not None and save and rank() == 0:
        save_cache(config.save_dir, name, found)
    return found.embeddings_to(storage)


def entry_fingerprint(
    encoders: Mapping[str, Encoder], dataset: Dataset | Sequence[Any], config: CacheConfig, device: torch.device
) -> dict[str, str]:
    """The fingerprint of ``encoders`` over ``dataset`` encoded on ``device`` as ``config`` says: its
    ``precision`` as it resolves there (``auto`` is bfloat16 on one machine, float32 on another)."""
    precision = precision_name(device, config.precision)
    return cache_fingerprint(encoders, dataset, config.views, config.dtype, precision)


def check_name(name: str) -> None:
    """Names become folder names; nothing that could leave the cache folder."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"cache name {name!r} must be letters, digits, '_' or '.'")


def as_cache_config(cache: str | Path | CacheConfig | None, needs_folder: str | None = None) -> CacheConfig:
    """A folder or a ``CacheConfig`` -> ``CacheConfig``; ``needs_folder`` names a caller that needs a folder."""
    config = cache if isinstance(cache, CacheConfig) else CacheConfig(save_dir=cache)
    if needs_folder and config.save_dir is None:
        raise ValueError(
            f"{needs_folder} needs a cache folder: pass a folder or a CacheConfig with save_dir, got {cache!r}"
        )
    return config


def as_encoder_dict(encoders: Any) -> dict[str, Encoder]:
    """An Encoder, a mapping of them, or a SimilarityModel -> {name: Encoder} (a single one is "default")."""
    if isinstance(encoders, SimilarityModel):
        return dict(encoders.encoders.items())
    if isinstance(encoders, Encoder):
        return {DEFAULT_ENCODER: encoders}
    if isinstance(encoders, Mapping) and encoders and all(isinstance(e, Encoder) for e in encoders.values()):
        return dict(encoders.items())
    raise TypeError(
        f"encoders must be an Encoder, a non-empty {{name: Encoder}} mapping or a SimilarityModel; "
        f"got {type(encoders).__name__}"
    )
