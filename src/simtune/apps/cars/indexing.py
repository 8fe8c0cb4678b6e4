"""Cars into a vector index: payload (class, make, year, split, path), stable ids, and where the index lives.

``build_index(run_dir, records)`` is what ``simtune cars index`` and ``simtune cars demo`` call.
The default index is embedded (Qdrant Edge) in ``RUN/index``; ``location`` can send it to a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from simtune.apps.cars.dataset import CarRecord
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
    on success (see ``EdgeIndex.write``).
    """
    model = model if model is not None else load_run_model(run_dir)
    location = location or IndexLocation.for_run(run_dir)
    if vectors is not None and len(vectors) != len(records):
        raise ValueError(f"got {len(vectors)} vectors for {len(records)} records")
    schema = cars_schema(model)
    if location.index_dir is not None:
        writer = EdgeIndex.write(location.index_dir, schema)
    else:
        writer = QdrantServerIndex.connect(location.qdrant_url, location.collection, schema, location.api_key, create=True)
    with writer as index:
        _upsert_all(index, model, records, vectors, batch_size, progress)
        count = index.count()
    return location, count


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
