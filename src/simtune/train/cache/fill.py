"""One pass (or ``views`` passes) of the frozen encoders over a dataset, through the streaming encoder
(:func:`simtune.encoding.encode_batches`: decoding in worker processes while the encoders run).

Embeddings go to the storage device; targets always stay on the CPU (loader workers read them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.encoding import encode_batches
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


class EncoderInputs:
    """Samples -> {encoder: its batch input}. A class, so workers can pickle it."""

    def __init__(self, collates: Mapping[str, Callable[[list[Any]], Any]]):
        self.collates = dict(collates)

    def __call__(self, samples: list[Any]) -> dict[str, Any]:
        _, objects, _ = split_samples(samples)
        return {name: collate(objects) for name, collate in self.collates.items()}


def sample_targets(samples: list[Any]) -> tuple[str, dict[str, Tensor]]:
    """Samples -> (kind, per-item targets), computed in the workers beside the encoder inputs."""
    kind, _, targets = split_samples(samples)
    return kind, targets


class EncodersForward:
    """{encoder: input} -> {encoder: output}: every encoder on its own input."""

    def __init__(self, encoders: Mapping[str, Encoder]):
        self.encoders = dict(encoders)

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, Tensor]:
        return {name: encoder(inputs[name]) for name, encoder in self.encoders.items()}


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
    for encoder in encoders.values():
        encoder.eval().to(device)
    embeddings: dict[str, Tensor] = {}
    targets: dict[str, list[Tensor]] = {}
    kind = ""
    desc = f"Caching {num_items} items" + (f" x {config.views} views" if config.views > 1 else "") + f" ({cache_name})"
    for view in range(config.views):
        batches = encode_batches(
            EncodersForward(encoders),
            dataset,
            EncoderInputs({name: encoder.get_collate_fn() for name, encoder in encoders.items()}),
            extras=sample_targets,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            device=device,
            precision=config.precision,
            progress=progress,
            desc=desc + (f" view {view + 1}/{config.views}" if config.views > 1 else ""),
        )
        row = 0
        for batch in batches:
            kind, batch_targets = batch.extras
            rows = num_items * (2 if kind == "pair" else 1)
            for name, out in batch.outputs.items():
                if name not in embeddings:
                    shape = (config.views, rows, out.shape[1])
                    embeddings[name] = torch.empty(shape, dtype=config.torch_dtype, device=storage_device)
                embeddings[name][view, row : row + len(out)].copy_(out, non_blocking=True)
            row += len(batch.indices) * (2 if kind == "pair" else 1)
            if view == 0:
                for key, value in batch_targets.items():
                    targets.setdefault(key, []).append(value)
    if storage_device.type == "cuda":
        torch.cuda.synchronize(storage_device)
    return CachedEmbeddings(
        kind=kind,
        embeddings=embeddings,
        targets={key: torch.cat(values) for key, values in targets.items()},
        fingerprint=fingerprint,
    )
