"""Cars into a vector index: payload (class, make, year, split, path), stable ids, and where the index lives.

``index_run(run_dir, dataset)`` is what ``simtune cars index`` and ``simtune cars demo`` call: it embeds
with the run's tuned model, taking backbone outputs from the run's encoder cache where training left
them, and writes ``RUN/index`` (embedded Qdrant Edge) or a collection on a Qdrant server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from qdrant_client import QdrantClient
from tqdm.auto import tqdm

from simtune.apps.images.data.dataset import SPLIT_FILE, TRAIN, UNSEEN, CarRecord, CarsDataset
from simtune.search import EdgeIndex, Embedder, IndexSchema, QdrantServerIndex, VectorIndex, point_id

INDEX_DIR_NAME = "index"
DEFAULT_COLLECTION = "cars"
MODEL_DIR_NAME = "model"
# split: the data set's own split (train/test); subset: whether the run tuned on the class (train/unseen).
CAR_FIELDS = {"class_name": "keyword", "make": "keyword", "year": "integer", "split": "keyword", "subset": "keyword"}


@dataclass(frozen=True)
class IndexLocation:
    """Either an embedded index folder or a collection on a Qdrant server."""

    index_dir: Path | None = None
    qdrant_url: str | None = None
    api_key: str | None = None
    collection: str = DEFAULT_COLLECTION

    @classmethod
    def for_run(
        cls, run_dir: str | Path, index_dir: str | Path | None = None, qdrant_url: str | None = None,
        api_key: str | None = None, collection: str = DEFAULT_COLLECTION,
    ) -> "IndexLocation":
        """``--index`` and ``--qdrant-url`` are alternatives; neither means ``RUN/index``."""
        if index_dir is not None and qdrant_url is not None:
            raise ValueError("give either --index DIR or --qdrant-url URL, not both")
        if qdrant_url is not None:
            return cls(qdrant_url=qdrant_url, api_key=api_key, collection=collection)
        return cls(index_dir=Path(index_dir) if index_dir is not None else Path(run_dir) / INDEX_DIR_NAME)

    def __str__(self) -> str:
        return str(self.index_dir) if self.index_dir is not None else f"{self.qdrant_url} (collection {self.collection!r})"


def cars_schema(model: Embedder) -> IndexSchema:
    return IndexSchema(model.fingerprint(), model.embedding_size, "cosine", CAR_FIELDS)


def car_payload(record: CarRecord) -> dict[str, Any]:
    payload: dict[str, Any] = {"class_name": record.class_name, "make": record.make, "subset": record.subset, "path": record.path}
    if record.year is not None:
        payload["year"] = record.year
    if record.original_split:
        payload["split"] = record.original_split
    return payload


def car_point_id(record: CarRecord) -> str:
    """From the image path, so re-indexing the same images replaces their points."""
    return point_id(Path(record.path).as_posix())


def load_run_model(run_dir: str | Path) -> Any:
    """The run's tuned, servable ``SimilarityModel`` (``RUN/model``)."""
    from simtune.models import SimilarityModel

    model_dir = Path(run_dir) / MODEL_DIR_NAME
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} not found: train a model first with `simtune cars train --run {run_dir}`")
    return SimilarityModel.load(model_dir)


def open_index(location: IndexLocation, model: Embedder) -> VectorIndex:
    """Opens an existing index for searching with ``model`` (another model is a ``ModelMismatchError``)."""
    schema = cars_schema(model)
    if location.index_dir is not None:
        return EdgeIndex.open(location.index_dir, expect=schema)
    return QdrantServerIndex.connect(location.qdrant_url, location.collection, schema, api_key=location.api_key)


def index_run(
    run_dir: str | Path, dataset: CarsDataset, location: IndexLocation | None = None, progress: bool = True
) -> tuple[IndexLocation, int]:
    """Indexes every record of ``dataset`` with the run's tuned model; returns (where, points in the index)."""
    model = load_run_model(run_dir)
    vectors = tuned_vectors_from_cache(run_dir, model, dataset)
    return build_index(run_dir, dataset.records, model=model, location=location, vectors=vectors, progress=progress)


def serve_hint(run_dir: str | Path, location: IndexLocation) -> str:
    """The command that serves what ``index_run`` built."""
    if location.qdrant_url is not None:
        return f"simtune cars serve --run {run_dir} --qdrant-url {location.qdrant_url} --collection {location.collection}"
    default = Path(run_dir) / INDEX_DIR_NAME
    return f"simtune cars serve --run {run_dir}" + ("" if location.index_dir == default else f" --index {location.index_dir}")


def tuned_vectors_from_cache(run_dir: str | Path, model: Any, dataset: CarsDataset) -> np.ndarray | None:
    """Tuned embeddings of ``dataset.records``: the head applied to the backbone outputs that training
    and evaluation cached in ``RUN/cache`` (the same samples, so the same cache entries; anything missing
    is encoded once and cached). None for a run without training settings (e.g. a model saved by hand)."""
    from simtune.apps.images.run.train import CACHE_DIR, SETTINGS_FILE, load_settings

    run_dir = Path(run_dir)
    if not (run_dir / SETTINGS_FILE).is_file() or not (run_dir / SPLIT_FILE).is_file():
        return None
    import torch

    from simtune.apps.images.run.evaluate import head_embeddings
    from simtune.apps.images.data.samples import CarSamples
    from simtune.apps.images.run.split import ClassSplit
    from simtune.train import CacheConfig
    from simtune.train.cache.encoder_cache import EncoderCache

    settings = load_settings(run_dir)
    class_map = {c: i for i, c in enumerate(ClassSplit.load(run_dir / SPLIT_FILE).train_classes)}
    # Split names and sample options exactly as train_run (train) and evaluate_run (val) cache them.
    samples = {
        "train": CarSamples(dataset.subset(TRAIN), mirrored=settings.mirror, class_map=class_map) if dataset.subset(TRAIN) else None,
        "val": CarSamples(dataset.subset(UNSEEN)) if dataset.subset(UNSEEN) else None,
    }
    samples = {name: s for name, s in samples.items() if s is not None}
    config = CacheConfig(cache_type="cpu", save_dir=run_dir / CACHE_DIR, batch_size=16, num_workers=settings.workers)
    cache = EncoderCache(config, dict(model.encoders.items()), samples)
    cache.prepare(torch.device("cpu"))
    by_path: dict[str, np.ndarray] = {}
    for name, subset in samples.items():
        stored = cache.get(name).embeddings
        originals = len(subset.records)  # mirrored copies follow the originals
        backbone = torch.cat([stored[encoder][0, :originals].float() for encoder in sorted(model.encoders)], dim=1)
        by_path.update(zip((r.path for r in subset.records), head_embeddings(model, backbone).numpy()))
    return np.stack([by_path[record.path] for record in dataset.records])


def build_index(
    run_dir: str | Path,
    records: Sequence[CarRecord],
    model: Embedder | None = None,
    location: IndexLocation | None = None,
    vectors: np.ndarray | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> tuple[IndexLocation, int]:
    """Embeds ``records`` with the run's model and upserts them; returns (where, points in the index).

    ``vectors``: embeddings of ``records`` by that same model, if the caller already has them
    (e.g. from evaluation), so nothing is embedded twice. Idempotent: ids come from image paths, so
    re-running replaces points. The embedded index is written to a staged copy and swapped in only
    on success (see ``EdgeIndex.write`` and ``QdrantServerIndex.write``).
    """
    model = model if model is not None else load_run_model(run_dir)
    location = location or IndexLocation.for_run(run_dir)
    if vectors is not None and len(vectors) != len(records):
        raise ValueError(f"got {len(vectors)} vectors for {len(records)} records")
    schema = cars_schema(model)
    if location.index_dir is not None:
        with EdgeIndex.write(location.index_dir, schema) as index:
            _upsert_all(index, model, records, vectors, batch_size, progress)
            if progress:
                tqdm.write(f"building the HNSW search graph over {index.count()} points (minutes for ~16k)")
            index.optimize()
            return location, index.count()
    client = QdrantClient(url=location.qdrant_url, api_key=location.api_key)
    try:
        with QdrantServerIndex.write(client, location.collection, schema) as index:
            _upsert_all(index, model, records, vectors, batch_size, progress)
            return location, index.count()
    finally:
        client.close()


def _upsert_all(
    index: VectorIndex, model: Embedder, records: Sequence[CarRecord], vectors: np.ndarray | None,
    batch_size: int, progress: bool,
) -> None:
    with tqdm(total=len(records), desc="indexing cars", unit="img", disable=not progress) as bar:
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            if vectors is not None:
                embedded = vectors[start : start + batch_size]
            else:
                embedded = model.encode([record.path for record in batch], batch_size=batch_size, to_numpy=True)
            index.upsert([car_point_id(r) for r in batch], embedded, [car_payload(r) for r in batch])
            bar.update(len(batch))
