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
from simtune.encoding import encode_batches, inference_context, precision_name
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
    for view in range(layout.views):
        suffix = f", view {view + 1}/{layout.views}" if layout.views > 1 else ""
        encode_pass(Alone(dataset), encoders, config, device, [(entry, view)], progress, suffix)
    return entry.finish()


def fill_together(
    together: Dataset,
    encoders: Mapping[str, Encoder],
    config: CacheConfig,
    device: torch.device,
    entries: Sequence[CacheEntry],
    progress: bool = True,
    precisions: Sequence[str] | None = None,
) -> list[CachedEmbeddings]:
    """Fill several single-view entries in one pass: ``together[i]`` holds item ``i`` of each entry's
    data set, in ``entries`` order, made at once (say an image and its mirror from one decode);
    ``precisions``: each entry's own (default ``config.precision``)."""
    targets = [(entry, 0) for entry in entries]
    encode_pass(together, encoders, config, device, targets, progress, precisions=precisions)
    return [entry.finish() for entry in entries]


class Picked(Dataset):
    """The members ``parts`` of every item of ``together`` (the data sets whose entries are to fill)."""

    def __init__(self, together: Dataset, parts: Sequence[int]):
        self.together = together
        self.parts = list(parts)

    def __len__(self) -> int:
        return len(self.together)

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        group = self.together[index]
        return tuple(group[part] for part in self.parts)


class Alone(Dataset):
    """Item ``i`` of one data set as a one-item group: what ``encode_pass`` reads."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Any]:
        return (self.dataset[index],)


class GroupedInputs:
    """Groups of items (one item per entry) -> each encoder's input for all of them, entry by entry, so
    one forward pass serves every entry. A class, so workers can pickle it."""

    def __init__(self, collates: Mapping[str, Callable[[list[Any]], Any]]):
        self.collates = EncoderInputs(collates)

    def __call__(self, groups: list[tuple[Any, ...]]) -> dict[str, Any]:
        return self.collates([item for part in zip(*groups) for item in part])


class InputsPerEntry:
    """Groups of items -> a list of each encoder's input, one per entry: for entries encoded in different
    precisions, whose items cannot share a forward pass. A class, so workers can pickle it."""

    def __init__(self, collates: Mapping[str, Callable[[list[Any]], Any]]):
        self.collates = EncoderInputs(collates)

    def __call__(self, groups: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        return [self.collates(list(part)) for part in zip(*groups)]


class ForwardPerEntry:
    """[entry 0's inputs, entry 1's inputs, ...] -> {(entry, encoder): output}, each entry's part under its own
    precision's autocast (keyed outputs, so a batch split to retry after running out of memory still joins
    up entry by entry)."""

    def __init__(self, encoders: Mapping[str, Encoder], device: torch.device, precisions: Sequence[str]):
        self.encoders = dict(encoders)
        self.device = device
        self.precisions = list(precisions)

    def __call__(self, parts: list[Mapping[str, Any]]) -> dict[tuple[int, str], Tensor]:
        outputs = {}
        for part, (inputs, precision) in enumerate(zip(parts, self.precisions)):
            with inference_context(self.device, precision):
                for name, encoder in self.encoders.items():
                    outputs[(part, name)] = encoder(inputs[name])
        return outputs


def grouped_targets(groups: list[tuple[Any, ...]]) -> list[tuple[str, dict[str, Tensor]]]:
    """(kind, targets) of each entry's items, computed in the workers."""
    return [sample_targets(list(part)) for part in zip(*groups)]


def encode_pass(
    items: Dataset,
    encoders: Mapping[str, Encoder],
    config: CacheConfig,
    device: torch.device,
    targets: Sequence[tuple[CacheEntry | MemoryEntry, int]],
    progress: bool = True,
    suffix: str = "",
    precisions: Sequence[str] | None = None,
) -> None:
    """One pass of the encoders over ``items`` (groups: one item per ``(entry, view)`` of ``targets``),
    encoding the items any of them lacks and writing each its own rows. A forward pass takes about
    ``config.batch_size`` items whatever the number of entries. ``precisions``: each target's own (default
    ``config.precision`` for all); entries whose precisions resolve differently get a forward pass each."""
    for encoder in encoders.values():
        encoder.eval().to(device)
    precisions = list(precisions) if precisions is not None else [config.precision] * len(targets)
    resolved = [precision_name(device, precision) for precision in precisions]
    lacking = []
    for (entry, view), precision in zip(targets, resolved):
        entry.precision = precision
        lacking.append(entry.missing(view))
    todo = sorted(set().union(*lacking))
    names = " + ".join(entry.layout.name for entry, _ in targets)
    collates = {name: encoder.get_collate_fn() for name, encoder in encoders.items()}
    shared = len(set(resolved)) == 1
    batches = encode_batches(
        EncodersForward(encoders) if shared else ForwardPerEntry(encoders, device, precisions),
        items,
        GroupedInputs(collates) if shared else InputsPerEntry(collates),
        indices=todo,
        extras=grouped_targets,
        batch_size=max(1, config.batch_size // len(targets)),
        num_workers=config.num_workers,
        device=device,
        precision=precisions[0] if shared else "float32",
        progress=progress,
        desc=f"Caching {len(todo)} items ({names}{suffix})",
    )
    wanted = [set(positions) for positions in lacking]
    for batch in batches:
        if not shared:  # {(entry, encoder): rows} -> {encoder: rows entry by entry}, as one shared pass gives
            batch.outputs = {
                name: torch.cat([batch.outputs[(part, name)] for part in range(len(targets))]) for name in encoders
            }
        items_here = len(batch.indices)
        for (entry, _), (kind, _) in zip(targets, batch.extras):
            entry.start(kind)
            if kind != entry.layout.kind:
                raise TypeError(f"the {entry.layout.name} dataset mixes {entry.layout.kind} and {kind} items")
        bounds = [0]
        for entry, _ in targets:
            bounds.append(bounds[-1] + items_here * entry.layout.rows_per_item)
        check_rows(batch.outputs, items_here * len(targets), bounds[-1], targets[0][0].layout.widths)
        for part, ((entry, view), (_, part_targets)) in enumerate(zip(targets, batch.extras)):
            outputs = {name: output[bounds[part] : bounds[part + 1]] for name, output in batch.outputs.items()}
            keep = [i for i, position in enumerate(batch.indices.tolist()) if position in wanted[part]]
            if len(keep) < items_here:
                outputs, part_targets = _selected(keep, entry.layout.rows_per_item, outputs, part_targets)
            if keep:
                entry.write(view, batch.indices[keep], outputs, part_targets)


def _selected(
    keep: list[int], per_item: int, outputs: dict[str, Tensor], targets: dict[str, Tensor]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The rows and targets of items ``keep`` alone (an entry already holding the others)."""
    rows = torch.tensor([i * per_item + r for i in keep for r in range(per_item)], dtype=torch.long)
    return (
        {name: output[rows] for name, output in outputs.items()},
        {key: value[keep] for key, value in targets.items()},
    )


def check_rows(outputs: Mapping[str, Tensor], items: int, rows: int, widths: Mapping[str, int]) -> None:
    """Outputs that do not fit the entries are an error here, not a silently misplaced row."""
    for name, output in outputs.items():
        expected = (rows, widths[name])
        if tuple(output.shape) != expected:
            raise ValueError(
                f"encoder {name!r} returned {tuple(output.shape)} for {items} items; its embedding_size "
                f"{widths[name]} promises {expected}"
            )
