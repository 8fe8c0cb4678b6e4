"""One pass (or ``views`` passes) of the frozen encoders over what a cache entry lacks, through the
streaming encoder (:func:`simtune.encoding.encode_batches`: decoding in worker processes while the
encoders run), each batch written to the entry as it comes: a file entry on disk chunk by chunk, or one
in memory. Targets always stay on the CPU (loader workers read them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.encoding import encode_batches, precision_name
from simtune.models.encoders.base import Encoder
from simtune.train.cache.config import CacheConfig
from simtune.train.cache.memory_entry import MemoryEntry
from simtune.train.cache.storage import CachedEmbeddings, CacheEntry, Layout


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


def dataset_kind(dataset: Dataset | Sequence[Any]) -> str:
    """ "group", "pair" or "object", from the first item."""
    return split_samples([dataset[0]])[0]


def cache_layout(
    dataset: Dataset | Sequence[Any], encoders: Mapping[str, Encoder], config: CacheConfig, name: str, fingerprint: dict
) -> Layout:
    """What the cache of ``encoders`` over ``dataset`` holds, before anything is encoded (or read: the
    kind of items is learnt from the first batch)."""
    return Layout(
        name=name,
        kind="",
        fingerprint=dict(fingerprint),
        dtype=config.dtype,
        views=config.views,
        items=len(dataset),
        widths={encoder_name: encoders[encoder_name].embedding_size for encoder_name in sorted(encoders)},
        chunk_items=config.chunk_items,
    )


def fill_cache(
    dataset: Dataset,
    encoders: Mapping[str, Encoder],
    config: CacheConfig,
    device: torch.device,
    entry: CacheEntry | MemoryEntry,
    progress: bool = True,
) -> CachedEmbeddings:
    """Encode every item ``entry`` lacks, view by view (``config.views`` passes), and complete it."""
    layout = entry.layout
    if layout.items == 0:
        raise ValueError(f"the {layout.name} dataset is empty; nothing to cache")
    for encoder in encoders.values():
        encoder.eval().to(device)
    entry.precision = precision_name(device, config.precision)
    collate = EncoderInputs({name: encoder.get_collate_fn() for name, encoder in encoders.items()})
    for view in range(layout.views):
        todo = entry.missing(view)
        desc = f"Caching {len(todo)} items ({layout.name}" + (
            f", view {view + 1}/{layout.views})" if layout.views > 1 else ")"
        )
        batches = encode_batches(
            EncodersForward(encoders),
            dataset,
            collate,
            indices=todo,
            extras=sample_targets,
            batch_size=config.batch_size,
            num_workers=config.num_workers,
            device=device,
            precision=config.precision,
            progress=progress,
            desc=desc,
        )
        for batch in batches:
            kind, targets = batch.extras
            entry.start(kind)
            check_batch(entry.layout, kind, batch.outputs, len(batch.indices))
            entry.write(view, batch.indices, batch.outputs, targets)
    return entry.finish()


def check_batch(layout: Layout, kind: str, outputs: Mapping[str, Tensor], items: int) -> None:
    """Outputs that do not fit the entry are an error here, not a silently misplaced row."""
    if kind != layout.kind:
        raise TypeError(f"the {layout.name} dataset mixes {layout.kind} and {kind} items")
    for name, output in outputs.items():
        expected = (items * layout.rows_per_item, layout.widths[name])
        if tuple(output.shape) != expected:
            raise ValueError(
                f"encoder {name!r} returned {tuple(output.shape)} for {items} items; its embedding_size "
                f"{layout.widths[name]} promises {expected}"
            )
