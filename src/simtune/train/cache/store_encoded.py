"""``store_encoded``: hand in frozen encoders' outputs computed elsewhere, so nothing encodes them again.

A user (or an app) that already holds the outputs of its encoders for a data set, say from one pass over
every image shared by all splits, stores them under the fingerprint ``encode_or_load`` and ``fit`` look
up; they then read these rows instead of encoding. The outputs are checked against the encoders and the
items (names, rows, widths, views), so a wrong table fails here, not as a silently wrong cache.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from simtune.data.group_dataset import group_labels
from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.devices import select_device
from simtune.models.encoders.base import Encoder
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.encode_or_load import (
    as_cache_config,
    as_encoder_dict,
    check_name,
    entry_fingerprint,
)
from simtune.train.cache.fill import split_samples
from simtune.train.cache.storage import CachedEmbeddings, save_cache


def store_encoded(
    encoders: Any,
    dataset: Dataset | Sequence[Any],
    outputs: Tensor | Mapping[str, Tensor],
    cache: str | Path | CacheConfig,
    *,
    name: str = "features",
    device: str | torch.device | None = None,
) -> CachedEmbeddings:
    """Save ``outputs`` as the cache entry of ``encoders`` over ``dataset``; returns what was saved.

    ``encoders``, ``dataset`` and ``cache`` are what ``encode_or_load`` (or ``fit``, through
    ``configure_caches``) will be given: the entry is found by their fingerprint, so another encoder or
    other items never read it. ``outputs``: ``{encoder name: (rows, dim)}`` float tensors (a single tensor
    for a single encoder), row ``i`` for item ``i`` (a pair item owns rows ``2i`` and ``2i + 1``), or
    ``(views, rows, dim)`` when the ``CacheConfig`` has ``views`` > 1. Labels are taken from the items
    (``dataset.groups`` when it has them, so images are not decoded). Stored in the config's dtype.
    ``name``: as in ``encode_or_load``, saving removes older entries of that name, so store each split
    (e.g. "train", "val") under its own. ``device``: where those readers run (``fit``: the training
    device), for a ``precision`` of ``"auto"``, which is part of the fingerprint as it resolves there.
    """
    encoders = as_encoder_dict(encoders)
    config = as_cache_config(cache, needs_folder="store_encoded")
    check_name(name)
    num_items = len(dataset)
    if num_items == 0:
        raise ValueError("store_encoded: the dataset is empty; nothing to store")
    kind, targets = dataset_targets(dataset)
    rows = num_items * (2 if kind == "pair" else 1)
    embeddings = {
        encoder_name: checked_output(encoder_name, encoder, output, config, rows, kind)
        for encoder_name, (encoder, output) in _paired(encoders, outputs).items()
    }
    fingerprint = entry_fingerprint(encoders, dataset, config, select_device(device))
    stored = CachedEmbeddings(kind, embeddings, targets, fingerprint)
    save_cache(config.save_dir, name, stored)
    return stored


def dataset_targets(dataset: Dataset | Sequence[Any]) -> tuple[str, dict[str, Tensor]]:
    """(kind, targets) as ``fill_cache`` records them; group labels come from ``dataset.groups`` when present."""
    first = dataset[0]
    if isinstance(first, SimilarityGroupSample):
        return "group", {"groups": torch.tensor(group_labels(dataset))}
    if isinstance(first, SimilarityPairSample):
        kind, _, targets = split_samples([dataset[i] for i in range(len(dataset))])
        return kind, targets
    return "object", {}


def _paired(encoders: dict[str, Encoder], outputs: Tensor | Mapping[str, Tensor]) -> dict[str, tuple[Encoder, Any]]:
    if isinstance(outputs, Tensor):
        if len(encoders) != 1:
            raise TypeError(
                f"store_encoded: outputs is one tensor but there are {len(encoders)} encoders "
                f"({', '.join(sorted(encoders))}); pass {{encoder name: tensor}}"
            )
        outputs = {next(iter(encoders)): outputs}
    if not isinstance(outputs, Mapping):
        raise TypeError(
            f"store_encoded: outputs must be a tensor or {{encoder name: tensor}}, got {type(outputs).__name__}"
        )
    missing, unknown = sorted(set(encoders) - set(outputs)), sorted(set(outputs) - set(encoders))
    if missing or unknown:
        raise ValueError(
            f"store_encoded: outputs name encoders {sorted(outputs)}, the encoders are {sorted(encoders)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    return {name: (encoder, outputs[name]) for name, encoder in encoders.items()}


def checked_output(name: str, encoder: Encoder, output: Any, config: CacheConfig, rows: int, kind: str) -> Tensor:
    """``output`` as a (views, rows, dim) CPU tensor of the config's dtype, or a ValueError naming what is off."""
    label = f"store_encoded: outputs[{name!r}]"
    if not isinstance(output, Tensor) or not output.is_floating_point():
        raise TypeError(f"{label} must be a float tensor, got {getattr(output, 'dtype', type(output).__name__)}")
    if output.dim() == 2:
        output = output.unsqueeze(0)
    if output.dim() != 3:
        raise ValueError(f"{label} has shape {tuple(output.shape)}; expected (rows, dim) or (views, rows, dim)")
    views, got_rows, dim = output.shape
    if views != config.views:
        raise ValueError(f"{label} holds {views} view(s) but the CacheConfig has views={config.views}")
    if got_rows != rows:
        per_item = " (2 per pair item)" if kind == "pair" else ""
        raise ValueError(f"{label} has {got_rows} rows but the dataset needs {rows}{per_item}")
    if dim != encoder.embedding_size:
        raise ValueError(f"{label} has {dim} columns but encoder {name!r} embeds to {encoder.embedding_size}")
    return output.detach().to(device="cpu", dtype=config.torch_dtype).contiguous()
