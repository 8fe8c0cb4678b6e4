"""One pass (or ``views`` passes) of the frozen encoders over a dataset, in eval + inference mode.

Items are read and decoded by loader worker processes (``CacheConfig.workers_for``) while the encoder
runs on the previous batch, and batches are pinned when encoding on a GPU, so the encoder rarely waits
for the decoder. Embeddings go to the storage device; targets always stay on the CPU (loader workers
read them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.models.encoders.base import Encoder
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.storage import CachedEmbeddings


def split_samples(samples: Sequence[Any]) -> tuple[str, list[Any], dict[str, Tensor]]:
    """Samples -> (kind, objects, per-item targets). A pair item contributes objects a, b in turn;
    items that are not samples at all are unlabelled objects (e.g. a gallery to index)."""
    if all(isinstance(s, SimilarityGroupSample) for s in samples):
        return "group", [s.obj for s in samples], {"groups": torch.tensor([int(s.group) for s in samples])}
    if all(isinstance(s, SimilarityPairSample) for s in samples):
        objects = [obj for s in samples for obj in (s.obj_a, s.obj_b)]
        targets = {
            "scores": torch.tensor([float(s.score) for s in samples]),
            "subgroups": torch.tensor([int(s.subgroup) for s in samples]),
        }
        return "pair", objects, targets
    if not any(isinstance(s, (SimilarityGroupSample, SimilarityPairSample)) for s in samples):
        return "object", list(samples), {}
    kinds = sorted({type(s).__name__ for s in samples})
    raise TypeError(
        f"dataset items must all be SimilarityGroupSample, all SimilarityPairSample or all plain objects "
        f"to be cached; got a mix of {kinds}"
    )


class _EncoderInputs:
    """Fill collate: samples -> ({encoder: its batch input}, targets). A class, so workers can pickle it."""

    def __init__(self, collates: Mapping[str, Callable[[list[Any]], Any]]):
        self.collates = dict(collates)

    def __call__(self, samples: list[Any]) -> tuple[str, dict[str, Any], dict[str, Tensor]]:
        kind, objects, targets = split_samples(samples)
        return kind, {name: collate(objects) for name, collate in self.collates.items()}, targets


def fill_cache(
    dataset: Dataset,
    encoders: Mapping[str, Encoder],
    config: CacheConfig,
    device: torch.device,
    storage_device: torch.device,
    fingerprint: dict[str, str],
    cache_name: str = "train",
    progress: bool = True,
) -> CachedEmbeddings:
    """Encode every item ``config.views`` times; targets are taken from the first pass."""
    num_items = len(dataset)
    if num_items == 0:
        raise ValueError(f"the {cache_name} dataset is empty; nothing to cache")
    num_batches = -(-num_items // config.batch_size)
    workers = config.workers_for(num_batches)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        num_workers=workers,
        collate_fn=_EncoderInputs({name: enc.get_collate_fn() for name, enc in encoders.items()}),
        pin_memory=device.type == "cuda",
    )
    for encoder in encoders.values():
        encoder.eval().to(device)
    embeddings: dict[str, Tensor] = {}
    targets: dict[str, list[Tensor]] = {}
    kind = ""
    desc = f"Caching {num_items} items" + (f" x {config.views} views" if config.views > 1 else "") + f" ({cache_name})"
    with tqdm(total=num_items * config.views, desc=desc, unit="item", disable=not progress) as bar:
        for view in range(config.views):
            row = 0
            for kind, inputs, batch_targets in loader:
                inputs = move_data_to_device(inputs, device)
                with torch.inference_mode():
                    outputs = {name: encoder(inputs[name]) for name, encoder in encoders.items()}
                rows = num_items * (2 if kind == "pair" else 1)
                for name, out in outputs.items():
                    if name not in embeddings:
                        shape = (config.views, rows, out.shape[1])
                        embeddings[name] = torch.empty(shape, dtype=config.torch_dtype, device=storage_device)
                    embeddings[name][view, row : row + len(out)].copy_(out, non_blocking=True)
                row += len(out)
                if view == 0:
                    for key, value in batch_targets.items():
                        targets.setdefault(key, []).append(value)
                bar.update(len(out) // (2 if kind == "pair" else 1))
    if storage_device.type == "cuda":
        torch.cuda.synchronize(storage_device)
    return CachedEmbeddings(
        kind=kind,
        embeddings=embeddings,
        targets={key: torch.cat(values) for key, values in targets.items()},
        fingerprint=fingerprint,
    )
