"""Images into a vector index: payload (class, the dataset's metadata fields, split, path), stable ids,
and where the index lives.

``simtune images index`` keeps an index in sync with any folder (``catalog.sync.sync_catalog``), with the
run's model, or the pretrained backbone for a run without one (``model_for_index``).
``index_run(run, dataset)`` is what ``simtune images demo`` calls on its training collection: it embeds
with the run's tuned model, taking backbone outputs from the run's cache where training left them, and
writes ``RUN/index`` (embedded Qdrant Edge) or a collection on a Qdrant server. The filterable fields
are the class name, the split, the subset and the dataset's own metadata fields (make and year for cars).
Both record each file's size and modification time, so a later sync skips unchanged files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from simtune.apps.images.data.dataset import ImageDataset, ImageRecord
from simtune.apps.images.data.run_folder import Run
from simtune.search import EdgeIndex, Embedder, IndexSchema, QdrantServerIndex, VectorIndex, point_id
from simtune.search.edge_index import read_schema
from simtune.search.qdrant_server_index import client_for

DEFAULT_COLLECTION = "images"
CACHE_BLOCK_RECORDS = 2048  # records whose cached backbone outputs are taken to tuned vectors at once


@dataclass(frozen=True)
class IndexLocation:
    """Either an embedded index folder or a collection on a Qdrant server."""

    index_dir: Path | None = None
    qdrant_url: str | None = None
    api_key: str | None = None
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def for_run(
        cls,
        run: Run | str | Path,
        index_dir: str | Path | None = None,
        qdrant_url: str | None = None,
        api_key: str | None = None,
        collection: str = DEFAULT_COLLECTION,
    ) -> IndexLocation:
        """``--index`` and ``--qdrant-url`` are alternatives; neither means ``RUN/index``."""
        if index_dir is not None and qdrant_url is not None:
            raise ValueError("give either --index DIR or --qdrant-url URL, not both")
        if qdrant_url is not None:
            return cls(qdrant_url=qdrant_url, api_key=api_key, collection=collection)
        return cls(index_dir=Path(index_dir) if index_dir is not None else Run.of(run).index_dir)

    def __str__(self) -> str:
        return (
            str(self.index_dir) if self.index_dir is not None else f"{self.qdrant_url} (collection {self.collection!r})"
        )


def index_schema(model: Embedder, metadata_fields: dict[str, str], data_root: str | None = None) -> IndexSchema:
    """The class name, split (the data set's own, e.g. train/test) and subset (what the run did with the
    class: train/validation/unseen), then the dataset's metadata fields, all filterable; ``data_root`` is
    the folder the server may serve indexed images from."""
    return IndexSchema(
        model.fingerprint(),
        model.embedding_size,
        "cosine",
        {"class_name": "keyword", **metadata_fields, "split": "keyword", "subset": "keyword"},
        data_root,
    )


def common_root(records: Sequence[ImageRecord]) -> str:
    """The deepest folder holding every record's file (symlinks resolved): what the server may serve from."""
    return os.path.commonpath([os.path.dirname(os.path.realpath(record.path)) for record in records])


def record_payload(record: ImageRecord, root: str | None = None) -> dict[str, Any]:
    """Class name, metadata (fields without a value left out), subset, the data set's split, the path (and
    ``file``, relative to ``root``), and the file's size and modification time (what a sync compares)."""
    payload: dict[str, Any] = {"class_name": record.class_name}
    payload |= {name: value for name, value in record.metadata.items() if value is not None}
    payload |= {"subset": record.subset, "path": record.path}
    if record.original_split:
        payload["split"] = record.original_split
    stat = os.stat(record.path)
    payload |= {
        "file": os.path.relpath(record.path, root) if root else os.path.basename(record.path),
        "file_size": stat.st_size,
        "file_mtime_ns": stat.st_mtime_ns,
    }
    return payload


def model_for_index(run: Run | str | Path, backbone: str | None = None) -> tuple[Any, bool]:
    """``(model, created)``: the run's model, or, for a run without one, the pretrained ``backbone``
    (default lite0), which the caller saves as ``RUN/model`` once it has indexed with it (so ``search`` and
    ``serve`` embed with the same model, and a data folder refused leaves the run as it was)."""
    from simtune.apps.images.service.catalog.pretrained_model import DEFAULT_BACKBONE, pretrained_model

    run = Run.of(run)
    if run.model_dir.is_dir():
        if backbone is not None:
            raise ValueError(
                f"{run} already holds a model ({run.model_dir}); --backbone chooses the pretrained model of a run "
                "without one: use another --run"
            )
        return run.model(), False
    return pretrained_model(backbone or DEFAULT_BACKBONE), True


def record_point_id(record: ImageRecord) -> str:
    """From the image path, so re-indexing the same images replaces their points."""
    return point_id(Path(record.path).as_posix())


def open_index(location: IndexLocation, model: Embedder) -> VectorIndex:
    """Opens an existing index for searching with ``model`` (another model is a ``ModelMismatchError``,
    raised before the index is opened); its filterable fields are whatever it was built with."""
    if location.index_dir is not None:
        stored = read_schema(location.index_dir)
        expect = replace(stored, fingerprint=model.fingerprint(), embedding_size=model.embedding_size)
        return EdgeIndex.open(location.index_dir, expect=expect)
    index = QdrantServerIndex.connect(location.qdrant_url, location.collection, api_key=location.api_key)
    try:
        index.schema.check_model(model.fingerprint(), model.embedding_size)
    except BaseException:
        index.close()
        raise
    return index


def index_run(
    run: Run | str | Path,
    dataset: ImageDataset,
    location: IndexLocation | None = None,
    progress: bool = True,
    device: str = "auto",
) -> tuple[IndexLocation, int]:
    """Indexes every record of ``dataset`` with the run's tuned model; returns (where, points in the index).
    ``device``: where images the run's cache lacks are encoded."""
    run = Run.of(run)
    model = run.model()
    vectors = tuned_vectors_from_cache(run, model, dataset, device)
    return build_index(
        run,
        dataset.records,
        model=model,
        location=location,
        vectors=vectors,
        progress=progress,
        metadata_fields=dataset.metadata_fields,
    )


def serve_hint(run: Run | str | Path, location: IndexLocation, app: str = "images") -> str:
    """The command that serves what ``index_run`` built."""
    if location.qdrant_url is not None:
        return f"simtune {app} serve --run {run} --qdrant-url {location.qdrant_url} --collection {location.collection}"
    return f"simtune {app} serve --run {run}" + (
        "" if location.index_dir == Run.of(run).index_dir else f" --index {location.index_dir}"
    )


def tuned_vectors_from_cache(run: Run, model: Any, dataset: ImageDataset, device: str = "auto") -> np.ndarray | None:
    """Tuned embeddings of ``dataset.records``: the head applied to the backbone outputs cached in
    ``RUN/cache`` (anything missing is encoded once, on ``device``, and cached). None for a run without
    training settings (e.g. a model saved by hand)."""
    if not run.settings_file.is_file():
        return None
    from simtune.apps.images.run.features import BackboneFeatures, mirrors_images
    from simtune.apps.images.run.settings import load_settings
    from simtune.apps.images.run.validation import head_outputs

    settings = load_settings(run)
    features = BackboneFeatures.of_run(model.encoders, dataset.records, run.cache_dir, settings, device)
    features.prepare()
    mirrored, records = mirrors_images(model.encoders), dataset.records
    # A block of records at a time: the whole collection's backbone outputs would not fit in memory.
    blocks = range(0, len(records), CACHE_BLOCK_RECORDS)
    return np.concatenate(
        [
            head_outputs(
                model.head, features.backbone_outputs(records[start : start + CACHE_BLOCK_RECORDS], mirrored)
            ).numpy()
            for start in blocks
        ]
    )


def training_vectors(
    run: Run | str | Path, model: Any, data_root: str | Path, device: str = "auto"
) -> dict[str, np.ndarray] | None:
    """The tuned embeddings, by path, of the collection the run was trained on, read from its encoder cache
    (``tuned_vectors_from_cache``, on ``device``), when ``data_root`` is that collection; None otherwise."""
    run = Run.of(run)
    if not run.dataset_file.is_file():
        return None
    dataset = ImageDataset.load(run.dataset_file)
    if Path(dataset.data_root) != Path(data_root).expanduser().resolve() or dataset.cropped:
        return None
    vectors = tuned_vectors_from_cache(run, model, dataset, device)
    if vectors is None:
        return None
    return {record.path: vector for record, vector in zip(dataset.records, vectors)}


def build_index(
    run: Run | str | Path,
    records: Sequence[ImageRecord],
    model: Embedder | None = None,
    location: IndexLocation | None = None,
    vectors: np.ndarray | None = None,
    batch_size: int = 64,
    progress: bool = True,
    metadata_fields: dict[str, str] | None = None,
) -> tuple[IndexLocation, int]:
    """Embeds ``records`` with the run's model and upserts them; returns (where, points in the index).

    ``vectors``: embeddings of ``records`` by that same model, if the caller already has them
    (e.g. from evaluation), so nothing is embedded twice. ``metadata_fields``: the records' metadata
    fields and their payload types, filterable in the index. Idempotent: ids come from image paths, so
    re-running replaces points. The embedded index is written to a staged copy and swapped in only
    on success (see ``EdgeIndex.write`` and ``QdrantServerIndex.write``).
    """
    model = model if model is not None else Run.of(run).model()
    location = location or IndexLocation.for_run(run)
    if vectors is not None and len(vectors) != len(records):
        raise ValueError(f"got {len(vectors)} vectors for {len(records)} records")
    schema = index_schema(model, metadata_fields or {}, common_root(records) if records else None)
    if location.index_dir is not None:
        with EdgeIndex.write(location.index_dir, schema, expected_points=len(records)) as index:
            _upsert_all(index, model, records, vectors, batch_size, progress)
            if progress:
                tqdm.write(f"building the HNSW search graph over {index.count()} points (minutes for ~16k)")
            index.optimize()
            return location, index.count()
    client = client_for(location.qdrant_url, location.api_key)
    try:
        with QdrantServerIndex.write(client, location.collection, schema, url=location.qdrant_url) as index:
            _upsert_all(index, model, records, vectors, batch_size, progress)
            return location, index.count()
    finally:
        client.close()


def _upsert_all(
    index: VectorIndex,
    model: Embedder,
    records: Sequence[ImageRecord],
    vectors: np.ndarray | None,
    batch_size: int,
    progress: bool,
) -> None:
    root = index.schema.data_root
    with tqdm(total=len(records), desc="indexing images", unit="img", disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            if vectors is not None:
                embedded = vectors[start : start + batch_size]
            else:
                embedded = model.encode([record.path for record in batch], batch_size=batch_size, to_numpy=True)
            index.upsert([record_point_id(r) for r in batch], embedded, [record_payload(r, root) for r in batch])
            bar.update(len(batch))
