"""``sync_catalog``: make an index hold exactly the images of a folder, embedding only what changed.

The steps, each streaming: walk the folder (and read the metadata file) into a ``SyncPlan``; open a
resumable staged copy of the index (``edge_update`` for the embedded index, the ``--next`` collection
of ``QdrantServerIndex.write`` for a server) and read what its points were made from; delete the points
of files that are gone; embed the new and changed files in batches (decoded in worker processes) and
upsert each batch as it comes. A killed sync leaves the staged copy with every finished batch; the next
run compares the folder with that copy, so it continues where the other stopped and the result is the
same as one uninterrupted run. Readers see the old index until the copy replaces it whole.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from simtune.apps.images.data.dataset import ImageDataset
from simtune.apps.images.data.preset import IMAGES, Preset
from simtune.apps.images.data.run_folder import Run
from simtune.apps.images.service.catalog.catalog_images import CatalogImages, embedded_batches
from simtune.apps.images.service.catalog.folder_walk import (
    CATALOG_SUFFIXES,
    PLAIN,
    detect_layout,
    layout_fields,
    walk_labelled,
    walk_plain,
)
from simtune.apps.images.service.catalog.metadata_csv import MetadataCsv
from simtune.apps.images.service.catalog.problems import Problems
from simtune.apps.images.service.catalog.sync_plan import SyncCounts, SyncPlan
from simtune.search import Embedder, IndexSchema, QdrantServerIndex, VectorIndex, point_id
from simtune.search.edge_update import edge_update
from simtune.search.qdrant_server_index import client_for, pending_write
from simtune.search.storage import StorageOptions


@dataclass
class SyncResult:
    layout: str
    counts: SyncCounts
    points: int
    resumed: bool
    unreadable: int = 0
    problems: Problems = field(default_factory=Problems)

    def summary(self) -> str:
        c = self.counts
        return f"{c.added:,} added, {c.changed:,} changed, {c.removed:,} removed, {c.unchanged:,} unchanged" + (
            f", {self.unreadable:,} unreadable" if self.unreadable else ""
        )


def sync_catalog(
    data: str | Path,
    location: object,
    model: Embedder,
    preset: Preset = IMAGES,
    run_dir: str | Path | None = None,
    metadata: str | Path | None = None,
    plain: bool = False,
    storage: StorageOptions | None = None,
    batch_size: int = 32,
    workers: int = 2,
    progress: bool = True,
    rebuild: bool = False,
    known_vectors: Callable[[], Mapping[str, np.ndarray]] | None = None,
    device: str = "auto",
) -> SyncResult:
    """Brings the index at ``location`` (an ``IndexLocation``) in line with the images under ``data``;
    ``rebuild``: from an empty index (another model, other metadata columns), replacing the old one at the end.
    ``known_vectors``: gives the embeddings, by path, of files the caller already has (by this model), e.g.
    a training run's cached features of its own collection; called only when there is something to embed.
    ``device``: where a torch model embeds the images (``auto|cpu|cuda|cuda:N``)."""
    root = Path(data).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {data} does not exist or is not a folder")
    problems = Problems()
    layout = detect_layout(root, preset, plain)
    fields = layout_fields(preset, layout)
    table = MetadataCsv.read(metadata, root, tuple(fields), problems) if metadata is not None else None
    if table is not None:
        fields |= table.fields
    schema = IndexSchema(model.fingerprint(), model.embedding_size, "cosine", fields, str(root))
    with tempfile.TemporaryDirectory(prefix="simtune-sync-") as scratch:
        plan = SyncPlan(Path(scratch) / "plan.sqlite", root, fields)
        try:
            with tqdm(desc="finding images", unit="file", disable=not progress) as bar:
                files = (
                    walk_plain(root, problems)
                    if layout is None
                    else walk_labelled(layout, preset, _run_subsets(run_dir, root), problems)
                )
                found = plan.add_files(_counted(files, bar))
            if not found:
                details = "; ".join(problems.lines())
                raise ValueError(
                    f"{root}: no images found ({', '.join(CATALOG_SUFFIXES)})" + (f": {details}" if details else "")
                )
            if table is not None:
                plan.add_metadata(table.rows(problems), problems)
            with _staged(location, schema, storage, rebuild, found) as (index, resumed):
                plan.add_indexed(index.iter_payloads())
                counts = plan.classify(problems, with_metadata=table is not None)
                for ids in plan.removed_ids():
                    index.delete(ids)
                index.flush()
                unreadable = _embed_todo(
                    index, model, plan, scratch, batch_size, workers, progress, problems, known_vectors, device
                )
                counts.added -= unreadable["added"]  # counted apart, and their old points are gone
                counts.changed -= unreadable["changed"]
                counts.removed += unreadable["changed"]
                points = index.count()  # what replaces the live index when this block ends
                if progress and counts.added + counts.changed:
                    tqdm.write(f"building the search graph over {points:,} points")
            return SyncResult(
                layout=PLAIN if layout is None else layout.layout,
                counts=counts,
                points=points,
                resumed=resumed,
                unreadable=sum(unreadable.values()),
                problems=problems,
            )
        finally:
            plan.close()


def _embed_todo(
    index: VectorIndex,
    model: Embedder,
    plan: SyncPlan,
    scratch: str,
    batch_size: int,
    workers: int,
    progress: bool,
    problems: Problems,
    known_vectors: Callable[[], Mapping[str, np.ndarray]] | None = None,
    device: str = "auto",
) -> dict[str, int]:
    """Embeds and upserts the plan's to-do list batch by batch; returns how many new and changed files could
    not be read (their old points, if any, are deleted: they no longer show what the file holds)."""
    images = CatalogImages(Path(scratch) / "plan.sqlite", plan.todo_count())
    unreadable = {"added": 0, "changed": 0}
    if not len(images):
        return unreadable
    remaining = _upsert_known(index, plan, len(images), batch_size, known_vectors()) if known_vectors else None
    if remaining == []:
        return unreadable
    pending = _PendingPoints(index)
    for positions, vectors, errors in embedded_batches(model, images, batch_size, workers, progress, remaining, device):
        rows = plan.todo_rows(positions)
        gone = []
        for k, error in enumerate(errors):
            if error is not None:
                unreadable[rows[k][1]] += 1
                problems.add("images that cannot be read (skipped)", error)
                if rows[k][1] == "changed":
                    gone.append(point_id(rows[k][0]))
        index.delete(gone)
        keep = [k for k, error in enumerate(errors) if error is None]
        pending.add([point_id(rows[k][0]) for k in keep], vectors[keep], [rows[k][2] for k in keep])
    pending.write()
    return unreadable


class _PendingPoints:
    """Embedded points on their way to the index: written when ``index.write_points`` have gathered (a
    server takes large parallel uploads; the embedded index each batch), and made durable at once, so a
    killed sync loses only what was gathered."""

    def __init__(self, index: VectorIndex) -> None:
        self.index = index
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.payloads: list[dict] = []

    def add(self, ids: list[str], vectors: np.ndarray, payloads: list[dict]) -> None:
        self.ids += ids
        self.vectors.append(vectors)
        self.payloads += payloads
        if len(self.ids) >= self.index.write_points:
            self.write()

    def write(self) -> None:
        if self.ids:
            self.index.upsert(self.ids, np.concatenate(self.vectors), self.payloads)
            self.index.flush()
        self.ids, self.vectors, self.payloads = [], [], []


def _upsert_known(
    index: VectorIndex, plan: SyncPlan, count: int, batch_size: int, known: Mapping[str, np.ndarray]
) -> list[int]:
    """Upserts the to-do entries ``known`` has vectors for; returns the positions of the others."""
    unknown = []
    for start in range(0, count, batch_size):
        positions = list(range(start, min(start + batch_size, count)))
        rows = plan.todo_rows(positions)
        found = [k for k, (path, _, _) in enumerate(rows) if path in known]
        unknown += [positions[k] for k, (path, _, _) in enumerate(rows) if path not in known]
        if found:
            vectors = np.stack([known[rows[k][0]] for k in found])
            index.upsert([point_id(rows[k][0]) for k in found], vectors, [rows[k][2] for k in found])
            index.flush()
    return unknown


@contextmanager
def _staged(
    location: object, schema: IndexSchema, storage: StorageOptions | None, rebuild: bool, files: int
) -> Iterator[tuple[VectorIndex, bool]]:
    if location.index_dir is not None:
        with edge_update(location.index_dir, schema, storage, rebuild=rebuild, expected_points=files) as (
            index,
            resumed,
        ):
            yield index, resumed
        return
    client = client_for(location.qdrant_url, location.api_key)
    try:
        resumed = not rebuild and pending_write(client, location.collection, location.qdrant_url) is not None
        with QdrantServerIndex.write(
            client,
            location.collection,
            schema,
            url=location.qdrant_url,
            storage=storage,
            resumable=True,
            rebuild=rebuild,
        ) as index:
            yield index, resumed
    finally:
        client.close()


def _run_subsets(run_dir: str | Path | None, root: Path) -> dict[str, str]:
    """What a training run on this same folder did with each image's class (train/validation/unseen)."""
    path = Run.of(run_dir).dataset_file if run_dir is not None else None
    if path is None or not path.is_file():
        return {}
    dataset = ImageDataset.load(path)
    if Path(dataset.data_root) != root or dataset.cropped:
        return {}
    return {record.path: record.subset for record in dataset.records}


def _counted(files: Iterator, bar: tqdm) -> Iterator:
    for found in files:
        bar.update()
        yield found
