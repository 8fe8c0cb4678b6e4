"""Cached embeddings on disk: memory-mapped arrays written chunk by chunk as encoding goes, every chunk
checksummed, so a collection of any size is cached in bounded memory, a killed encode resumes where it
stopped, and damage is found on load.

One entry is a folder ``<save_dir>/<name>-<digest[:16]>/``:

- ``layout.json``: what it holds (fingerprint, kind, dtype, views, items, each encoder's width, chunk size),
  written first;
- ``embedding.<encoder>.npy``: a ``(views, rows, width)`` array in the stored dtype, created full size
  (sparse) and filled in place; read back memory-mapped, so a reader holds only the rows it touches;
- ``chunks/<view>.<start>-<stop>.json``: one record per finished chunk (a contiguous range of items in
  one view): the CRC32 of each encoder's rows, written (atomically) after the rows are on disk, and the
  items' targets.

An entry is complete when every chunk has its record. A chunk without one (the process died while
encoding it) is encoded again on the next fill; so is a chunk whose rows no longer match their CRC32
(damaged on disk), or its entry is refused where nothing may encode. Chunks are independent, so several
processes (the ranks of a distributed encode) can fill disjoint chunks of one entry. CRC32 rather than a
cryptographic hash: the cache guards against damage, not against someone who can write its files anyway,
and CRC32 reads at disk speed (the whole cache is verified on every load).

Entries are found by fingerprint, whatever their name: training, evaluation and indexing that encode the
same items with the same encoders share one entry. The name only groups versions: completing an entry
removes the other entries of its name, which a changed encoder or data set made stale.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from simtune.atomic import replace_directory, write_json
from simtune.train.cache.fingerprint import FORMAT_VERSION, describe_mismatch, fingerprint_digest

log = logging.getLogger(__name__)

LAYOUT = "layout.json"
CHUNKS = "chunks"
CHUNK_ITEMS = 512  # a killed encode loses at most this many items per process; ~5 MB per view of Lite0 maps
_OLD_FORMAT_FILES = ("meta.json", "embeddings.safetensors")
_RECORD = re.compile(r"^(\d+)\.(\d+)-(\d+)\.json$")
_NUMPY_DTYPES = {"float32": np.float32, "float16": np.float16}
_READ_BLOCK = 16 * 2**20


@dataclass
class CachedEmbeddings:
    """``embeddings[encoder]``: (views, rows, dim); ``targets[name]``: (items,) — everything training
    needs, so a fully frozen model never reads its dataset again. ``kind`` is "group" (targets
    ``groups``), "pair" (a pair item owns rows 2i and 2i+1; targets ``scores``, ``subgroups``) or
    "object" (unlabelled objects, no targets). Row i belongs to dataset item i. Targets stay on the CPU.
    Embeddings read from disk are memory-mapped: indexing rows reads only those rows."""

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


@dataclass(frozen=True)
class Chunk:
    """Items ``start``..``stop`` (exclusive) of one view."""

    view: int
    start: int
    stop: int

    @property
    def file_name(self) -> str:
        return f"{self.view}.{self.start}-{self.stop}.json"

    def __str__(self) -> str:
        return f"items {self.start}-{self.stop} of view {self.view}"


@dataclass(frozen=True)
class Layout:
    """What an entry holds; equal layouts are interchangeable entries."""

    name: str
    kind: str
    fingerprint: dict[str, str]
    dtype: str
    views: int
    items: int
    widths: dict[str, int]
    chunk_items: int = CHUNK_ITEMS
    format: int = FORMAT_VERSION

    @property
    def rows_per_item(self) -> int:
        return 2 if self.kind == "pair" else 1

    @property
    def rows(self) -> int:
        return self.items * self.rows_per_item

    def chunks(self, view: int | None = None) -> list[Chunk]:
        views = range(self.views) if view is None else [view]
        return [
            Chunk(v, start, min(start + self.chunk_items, self.items))
            for v in views
            for start in range(0, self.items, self.chunk_items)
        ]

    def chunk_of(self, view: int, item: int) -> Chunk:
        start = item - item % self.chunk_items
        return Chunk(view, start, min(start + self.chunk_items, self.items))

    def same_as(self, other: Layout) -> bool:
        mine, theirs = asdict(self), asdict(other)
        mine.pop("name"), theirs.pop("name")
        return mine == theirs


def entry_folder(save_dir: Path, name: str, fingerprint: Mapping[str, str]) -> Path:
    return Path(save_dir) / f"{name}-{fingerprint_digest(fingerprint)[:16]}"


def _read_layout(folder: Path) -> Layout | None:
    try:
        return Layout(**json.loads((folder / LAYOUT).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def find_entry(save_dir: Path, name: str, fingerprint: Mapping[str, str]) -> Path | None:
    """The folder holding this fingerprint's entry (complete or not): under ``name`` first, else under any
    name (another caller filled it)."""
    own = entry_folder(save_dir, name, fingerprint)
    if (own / LAYOUT).is_file():
        return own
    digest = fingerprint_digest(fingerprint)[:16]
    found = (f for f in sorted(Path(save_dir).glob(f"*-{digest}")) if not f.name.startswith("."))
    return next((f for f in found if (f / LAYOUT).is_file()), None)


def report_stale(save_dir: Path, name: str, layout: Layout) -> None:
    """One line on why the entries of ``name`` in ``save_dir`` do not serve ``layout`` (if there are any)."""
    for folder in sorted(Path(save_dir).glob(f"{name}-*")):
        old = _read_layout(folder)
        if old is not None and old.fingerprint != layout.fingerprint:
            changed = describe_mismatch(old.fingerprint, layout.fingerprint)
            if old.dtype != layout.dtype:
                changed = f"stored as {old.dtype}, {layout.dtype} asked" + (
                    "" if changed == "dtype" else f"; {changed}"
                )
            else:
                changed += " changed"
            log.warning("simtune cache: %s cache in %s is stale (%s); rebuilding", name, save_dir, changed)
            return
        if old is None and any((folder / f).exists() for f in _OLD_FORMAT_FILES):
            log.warning(
                "simtune cache: %s cache in %s is in an older format (one unchecked file); rebuilding", name, save_dir
            )
            return


class CacheEntry:
    """One entry folder, opened to fill (``create``: a new entry or the rest of an interrupted one) or to
    read (``load``: verified, then memory-mapped)."""

    def __init__(self, folder: Path, layout: Layout):
        self.folder = Path(folder)
        self.layout = layout
        self._files: dict[str, int] = {}
        self._offsets: dict[str, int] = {}
        self._pending: dict[Chunk, _PendingChunk] = {}
        self.precision = ""

    # ---- filling ------------------------------------------------------------------------------------

    @classmethod
    def create(cls, save_dir: Path, layout: Layout) -> CacheEntry:
        """The entry of ``layout`` in ``save_dir`` to fill: an interrupted one is resumed (its finished
        chunks kept, and said so); a new one is laid out on disk by ``start``, once the first batch
        tells the kind of items."""
        found = find_entry(save_dir, layout.name, layout.fingerprint)
        existing = _read_layout(found) if found else None
        if existing is not None and not existing.same_as(replace(layout, kind=existing.kind)):
            shutil.rmtree(found)  # same fingerprint, other shape (another chunk size): start afresh
            existing = None
        if existing is None:
            report_stale(save_dir, layout.name, layout)
            return cls(entry_folder(save_dir, layout.name, layout.fingerprint), layout)
        entry = cls(found, existing)
        done = sum(c.stop - c.start for c in entry.finished())
        if done:
            log.warning(
                "simtune cache: resuming the %s cache in %s: %d of %d items already encoded",
                layout.name,
                found,
                done,
                layout.items * layout.views,
            )
        entry._open_for_writing()
        return entry

    def start(self, kind: str) -> None:
        """Lays a new entry out on disk (arrays at full size, sparse, then ``layout.json``)."""
        if self._files:
            return
        self.layout = replace(self.layout, kind=kind)
        shutil.rmtree(self.folder, ignore_errors=True)  # a start that died before its layout was written
        (self.folder / CHUNKS).mkdir(parents=True)
        for encoder, width in self.layout.widths.items():
            _create_array(self.folder / _array_name(encoder), self.layout, width)
        write_json(self.folder / LAYOUT, asdict(self.layout), indent=1, sort_keys=True)
        self._open_for_writing()

    def _open_for_writing(self) -> None:
        for encoder in self.layout.widths:
            path = self.folder / _array_name(encoder)
            self._offsets[encoder] = _data_offset(path)
            self._files[encoder] = os.open(path, os.O_RDWR)

    def finished(self) -> list[Chunk]:
        """Chunks with a readable record (their rows not yet checked)."""
        return [chunk for chunk in self.layout.chunks() if self._record(chunk) is not None]

    def missing(self, view: int) -> list[int]:
        """Positions of the items of ``view`` that have no finished chunk, in order."""
        return [
            i
            for chunk in self.layout.chunks(view)
            if self._record(chunk) is None
            for i in range(chunk.start, chunk.stop)
        ]

    def write(self, view: int, positions: Tensor, outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> None:
        """Rows of items ``positions`` (``outputs[encoder]``: ``rows_per_item`` rows per item, in order);
        each chunk whose items are all written is then synced and recorded."""
        per_item = self.layout.rows_per_item
        positions = positions.tolist()
        dtype = _NUMPY_DTYPES[self.layout.dtype]
        for first, last in _runs(positions):
            at = positions.index(first)
            count = last - first + 1
            for encoder, output in outputs.items():
                rows = output[at * per_item : (at + count) * per_item].to(torch.float32).numpy().astype(dtype)
                os.pwrite(self._files[encoder], rows.tobytes(), self._row_offset(encoder, view, first * per_item))
        for index, item in enumerate(positions):
            chunk = self.layout.chunk_of(view, item)
            pending = self._pending.setdefault(chunk, _PendingChunk(chunk))
            pending.add(item, {key: value[index] for key, value in targets.items()})
            if pending.complete:
                self._record_chunk(pending)
                del self._pending[chunk]

    def _record_chunk(self, pending: _PendingChunk) -> None:
        chunk = pending.chunk
        for descriptor in self._files.values():
            os.fdatasync(descriptor)
        record = {
            "crc32": {encoder: self._crc32(encoder, chunk) for encoder in self.layout.widths},
            "targets": pending.targets_json(),
            "precision": self.precision,
        }
        write_json(self.folder / CHUNKS / chunk.file_name, record, indent=None)

    def finish(self) -> CachedEmbeddings:
        """The complete entry, memory-mapped; other entries of its name are removed. Raises if any chunk
        is missing (e.g. another process's share of a distributed encode is not written yet)."""
        self.close()
        if absent := [c for c in self.layout.chunks() if self._record(c) is None]:
            raise RuntimeError(f"{self.folder}: {len(absent)} chunks are not encoded yet, e.g. {absent[0]}")
        for other in Path(self.folder.parent).glob(f"{self.layout.name}-*"):
            if other != self.folder and other.is_dir():
                shutil.rmtree(other, ignore_errors=True)
        return self._mapped()

    def close(self) -> None:
        for descriptor in self._files.values():
            os.close(descriptor)
        self._files.clear()

    # ---- reading ------------------------------------------------------------------------------------

    @classmethod
    def load(
        cls, save_dir: Path, name: str, fingerprint: Mapping[str, str], num_items: int, repair: bool
    ) -> CachedEmbeddings | None:
        """The complete, verified entry for exactly this fingerprint, or None (why, in one log line).
        Chunks that fail their CRC32 are reported; with ``repair`` their records are removed, so the next
        fill encodes just them again, otherwise the entry is refused as it is."""
        folder = find_entry(save_dir, name, fingerprint) if Path(save_dir).is_dir() else None
        layout = _read_layout(folder) if folder is not None else None
        if layout is None or layout.fingerprint != dict(fingerprint):
            return None
        entry = cls(folder, layout)
        if layout.items != num_items:
            log.warning(
                "simtune cache: %s cache in %s holds %d items, the dataset has %d; rebuilding",
                name,
                folder,
                layout.items,
                num_items,
            )
            return None
        if any(entry._record(chunk) is None for chunk in layout.chunks()):
            return None  # an interrupted fill: the next fill resumes it
        damaged = entry.damaged()
        if damaged:
            action = "encoding them again" if repair else "refusing it"
            log.warning(
                "simtune cache: %s cache in %s is damaged: %d chunk(s) fail their checksum (%s%s); %s",
                name,
                folder,
                len(damaged),
                damaged[0],
                ", ..." if len(damaged) > 1 else "",
                action,
            )
            if repair:
                for chunk in damaged:
                    (folder / CHUNKS / chunk.file_name).unlink(missing_ok=True)
            return None
        return entry._mapped()

    def damaged(self) -> list[Chunk]:
        """Chunks whose rows (or array files) no longer match their records."""
        bad = []
        for chunk in self.layout.chunks():
            record = self._record(chunk)
            try:
                if record is None or any(self._crc32(e, chunk) != record["crc32"][e] for e in self.layout.widths):
                    bad.append(chunk)
            except (OSError, KeyError, ValueError):
                bad.append(chunk)
        return bad

    def _mapped(self) -> CachedEmbeddings:
        embeddings = {}
        for encoder, width in self.layout.widths.items():
            path = self.folder / _array_name(encoder)
            array = np.load(path, mmap_mode="c")  # copy-on-write: whatever happens to the tensor, not the file
            expected = (self.layout.views, self.layout.rows, width)
            if array.shape != expected or array.dtype != _NUMPY_DTYPES[self.layout.dtype]:
                raise ValueError(f"{path} holds {array.dtype}{list(array.shape)}, not what {LAYOUT} says")
            embeddings[encoder] = torch.from_numpy(array)
        return CachedEmbeddings(self.layout.kind, embeddings, self._targets(), dict(self.layout.fingerprint))

    def _targets(self) -> dict[str, Tensor]:
        parts: dict[str, list[Tensor]] = {}
        for chunk in self.layout.chunks(0):
            for key, stored in self._record(chunk)["targets"].items():
                parts.setdefault(key, []).append(torch.tensor(stored["values"], dtype=getattr(torch, stored["dtype"])))
        return {key: torch.cat(values) for key, values in parts.items()}

    # ---- bytes --------------------------------------------------------------------------------------

    def _record(self, chunk: Chunk) -> dict | None:
        try:
            record = json.loads((self.folder / CHUNKS / chunk.file_name).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and isinstance(record.get("crc32"), dict) else None

    def _row_offset(self, encoder: str, view: int, row: int) -> int:
        width = self.layout.widths[encoder]
        itemsize = np.dtype(_NUMPY_DTYPES[self.layout.dtype]).itemsize
        return self._offsets[encoder] + (view * self.layout.rows + row) * width * itemsize

    def _crc32(self, encoder: str, chunk: Chunk) -> int:
        path = self.folder / _array_name(encoder)
        if encoder not in self._offsets:
            self._offsets[encoder] = _data_offset(path)
        per_item = self.layout.rows_per_item
        start = self._row_offset(encoder, chunk.view, chunk.start * per_item)
        stop = self._row_offset(encoder, chunk.view, chunk.stop * per_item)
        crc = 0
        with open(path, "rb") as file:
            file.seek(start)
            while start < stop:
                block = file.read(min(_READ_BLOCK, stop - start))
                if not block:
                    raise ValueError(f"{path} is shorter than its layout")
                crc = zlib.crc32(block, crc)
                start += len(block)
        return crc


@dataclass
class _PendingChunk:
    """The items of a chunk written so far, with their targets."""

    chunk: Chunk
    targets: dict[str, dict[int, Tensor]] = field(default_factory=dict)
    written: set[int] = field(default_factory=set)

    def add(self, item: int, targets: Mapping[str, Tensor]) -> None:
        self.written.add(item)
        for key, value in targets.items():
            self.targets.setdefault(key, {})[item] = value

    @property
    def complete(self) -> bool:
        return len(self.written) == self.chunk.stop - self.chunk.start

    def targets_json(self) -> dict[str, dict]:
        stored = {}
        for key, values in self.targets.items():
            ordered = torch.stack([values[i] for i in range(self.chunk.start, self.chunk.stop)])
            stored[key] = {"dtype": str(ordered.dtype).removeprefix("torch."), "values": ordered.tolist()}
        return stored


def _array_name(encoder: str) -> str:
    return f"embedding.{encoder}.npy"


def _create_array(path: Path, layout: Layout, width: int) -> None:
    """A full-size array file (sparse until written), its .npy header in place."""
    shape = (layout.views, layout.rows, width)
    array = np.lib.format.open_memmap(path, mode="w+", dtype=_NUMPY_DTYPES[layout.dtype], shape=shape)
    del array


def _data_offset(path: Path) -> int:
    return np.load(path, mmap_mode="r").offset


def _runs(positions: list[int]) -> Iterator[tuple[int, int]]:
    """Consecutive stretches of ``positions`` as (first, last)."""
    if not positions:
        return
    first = last = positions[0]
    for position in positions[1:]:
        if position == last + 1:
            last = position
            continue
        yield first, last
        first = last = position
    yield first, last


def save_cache(save_dir: Path, name: str, cache: CachedEmbeddings) -> Path:
    """A complete entry from embeddings in memory, written whole under a staging name and swapped into
    place (:func:`simtune.atomic.replace_directory`): a crash at any point keeps the entry that was there
    (or none); other entries named ``name`` are removed once the new one is in place."""
    dtypes = {str(e.dtype).removeprefix("torch.") for e in cache.embeddings.values()}
    if len(dtypes) != 1 or not dtypes <= set(_NUMPY_DTYPES):
        raise ValueError(f"cache embeddings must all be float32 or all float16, got {sorted(dtypes)}")
    layout = Layout(
        name=name,
        kind=cache.kind,
        fingerprint=dict(cache.fingerprint),
        dtype=dtypes.pop(),
        views=cache.num_views,
        items=cache.num_items,
        widths={encoder: e.shape[2] for encoder, e in sorted(cache.embeddings.items())},
    )
    final = entry_folder(save_dir, name, cache.fingerprint)
    with replace_directory(final) as staging:
        (staging / CHUNKS).mkdir()
        for encoder, width in layout.widths.items():
            _create_array(staging / _array_name(encoder), layout, width)
        write_json(staging / LAYOUT, asdict(layout), indent=1, sort_keys=True)
        entry = CacheEntry(staging, layout)
        entry._open_for_writing()
        try:
            for chunk in layout.chunks():
                positions = torch.arange(chunk.start, chunk.stop)
                rows = slice(chunk.start * layout.rows_per_item, chunk.stop * layout.rows_per_item)
                outputs = {encoder: e[chunk.view, rows].cpu() for encoder, e in cache.embeddings.items()}
                targets = {key: value[chunk.start : chunk.stop] for key, value in cache.targets.items()}
                entry.write(chunk.view, positions, outputs, targets)
        finally:
            entry.close()
    for other in Path(save_dir).glob(f"{name}-*"):
        if other != final and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)
    return final


def load_cache(
    save_dir: Path, name: str, fingerprint: Mapping[str, str], num_items: int, repair: bool = False
) -> CachedEmbeddings | None:
    """The saved, verified entry for exactly this fingerprint, or None (a stale, damaged or unfinished
    one is reported in one line)."""
    return CacheEntry.load(Path(save_dir), name, fingerprint, num_items, repair)
