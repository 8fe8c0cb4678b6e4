"""A Qdrant server or cluster through ``qdrant-client``, for collections that outgrow one machine.

The model schema lives in the collection's metadata. Sharding and replication are the server's
business. Writes are upserts by stable id after the model check: a failed batch leaves every point
either as it was or replaced by a vector from the same model, and re-running completes it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from simtune.search.base import SearchHit, VectorIndex
from simtune.search.errors import IndexUnavailableError, UnknownPointError
from simtune.search.schema import IndexSchema

METADATA_KEY = "simtune_schema"
_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "dot_product": models.Distance.DOT,
    "euclidean": models.Distance.EUCLID,
    "manhattan": models.Distance.MANHATTAN,
}
_FIELD_TYPES = {"keyword": models.PayloadSchemaType.KEYWORD, "integer": models.PayloadSchemaType.INTEGER}


class QdrantServerIndex(VectorIndex):
    """``QdrantServerIndex(client, "cars", schema)`` opens (or, with ``create=True``, creates) a collection."""

    def __init__(
        self, client: QdrantClient, collection: str, schema: IndexSchema | None = None, create: bool = False
    ) -> None:
        self._client = client
        self.collection = collection
        if client.collection_exists(collection):
            self.schema = self._stored_schema()
            if schema is not None:
                self.schema.check_same_model(schema)
        elif create and schema is not None:
            client.create_collection(
                collection,
                vectors_config=models.VectorParams(size=schema.embedding_size, distance=_DISTANCES[schema.distance]),
                metadata={METADATA_KEY: schema.to_json()},
            )
            for name, kind in schema.filter_fields.items():
                client.create_payload_index(collection, name, _FIELD_TYPES[kind])
            self.schema = schema
        else:
            raise IndexUnavailableError(f"no collection {collection!r} on the Qdrant server; build it with `simtune cars index`")

    @classmethod
    def connect(
        cls, url: str, collection: str, schema: IndexSchema | None = None, api_key: str | None = None, create: bool = False
    ) -> "QdrantServerIndex":
        return cls(QdrantClient(url=url, api_key=api_key), collection, schema, create)

    def _stored_schema(self) -> IndexSchema:
        metadata = self._client.get_collection(self.collection).config.metadata or {}
        if METADATA_KEY not in metadata:
            raise IndexUnavailableError(
                f"collection {self.collection!r} was not created by simtune (no {METADATA_KEY!r} in its metadata)"
            )
        return IndexSchema.from_dict(json.loads(metadata[METADATA_KEY]))

    def count(self) -> int:
        return self._client.count(self.collection, exact=True).count

    def close(self) -> None:
        self._client.close()

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        points = [models.PointStruct(id=i, vector=v.tolist(), payload=p) for i, v, p in zip(ids, vectors, payloads)]
        self._client.upsert(self.collection, points, wait=True)

    def _search(self, vector: np.ndarray, k: int, filter: dict[str, str | int], exact: bool) -> list[SearchHit]:
        response = self._client.query_points(
            self.collection,
            query=vector.tolist(),
            limit=k,
            query_filter=_to_filter(filter),
            search_params=models.SearchParams(exact=exact),
            with_payload=True,
        )
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def _get(self, point_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        records = self._client.retrieve(self.collection, [point_id], with_payload=True, with_vectors=True)
        if not records:
            raise UnknownPointError(f"no point with id {point_id} in collection {self.collection!r}")
        return np.asarray(records[0].vector, dtype=np.float32), dict(records[0].payload or {})

    def _sample(self, n: int) -> list[SearchHit]:
        response = self._client.query_points(
            self.collection, query=models.SampleQuery(sample=models.Sample.RANDOM), limit=n, with_payload=True
        )
        return [SearchHit(str(p.id), 0.0, dict(p.payload or {})) for p in response.points]

    def _delete(self, ids: list[str]) -> None:
        self._client.delete(self.collection, models.PointIdsList(points=ids), wait=True)


def _to_filter(conditions: dict[str, str | int]) -> models.Filter | None:
    if not conditions:
        return None
    return models.Filter(
        must=[models.FieldCondition(key=name, match=models.MatchValue(value=value)) for name, value in conditions.items()]
    )
