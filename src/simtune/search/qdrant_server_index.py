"""A Qdrant server or cluster through ``qdrant-client``, for collections that outgrow one machine.

The model schema lives in the collection's metadata. Sharding and replication are the server's
business. The name users see (``cars``) is an alias: ``write`` fills a new physical collection (a copy
of the current one plus the new points) and switches the alias to it in one atomic server operation
only when the whole write succeeded, so searches never see a half-written index.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ApiException, ResponseHandlingException, UnexpectedResponse

from simtune.search.base import SearchHit, VectorIndex
from simtune.search.errors import IndexUnavailableError, SearchError, UnknownPointError
from simtune.search.schema import IndexSchema
from simtune.search.storage import INT8_QUANTILE, RESCORE_OVERSAMPLING, StorageOptions, search_width

METADATA_KEY = "simtune_schema"
_DISTANCES = {
    "cosine": models.Distance.COSINE,
    "dot_product": models.Distance.DOT,
    "euclidean": models.Distance.EUCLID,
    "manhattan": models.Distance.MANHATTAN,
}
_FIELD_TYPES = {
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
}
STORAGE_METADATA_KEY = "simtune_storage"
# A resumable write fills whichever of these two the alias does not point at.
RESUMABLE_SUFFIXES = ("--a", "--b")
# Batches a write sends at once (``upload_points``' parallel requests), so a remote server's round trips overlap.
UPLOAD_BATCH, UPLOAD_PARALLEL = 256, 4


class QdrantServerIndex(VectorIndex):
    """``QdrantServerIndex(client, "cars", expect=schema)`` opens a collection (or alias);
    ``QdrantServerIndex.write(client, "cars", schema)`` creates or extends one."""

    write_points = UPLOAD_BATCH * UPLOAD_PARALLEL  # a sync gathers one parallel upload's worth

    def __init__(
        self, client: QdrantClient, collection: str, expect: IndexSchema | None = None, url: str | None = None
    ) -> None:
        self._client = client
        self.collection = collection
        self.url = url
        with _reaching(url, f"looking up collection {collection!r}"):
            exists = client.collection_exists(collection)
            if not exists:
                raise IndexUnavailableError(
                    f"no collection {collection!r} on the Qdrant server; build it with `simtune images index`"
                )
            self.schema = self._stored_schema()
        if expect is not None:
            self.schema.check_same_model(expect)

    @classmethod
    def connect(
        cls, url: str, collection: str, expect: IndexSchema | None = None, api_key: str | None = None
    ) -> QdrantServerIndex:
        return cls(client_for(url, api_key), collection, expect, url)

    @classmethod
    @contextmanager
    def write(
        cls,
        client: QdrantClient,
        collection: str,
        schema: IndexSchema,
        url: str | None = None,
        storage: StorageOptions | None = None,
        resumable: bool = False,
        rebuild: bool = False,
    ) -> Iterator[QdrantServerIndex]:
        """Yields a writable copy of ``collection`` (created with ``storage`` if missing); the alias moves
        to it on success.

        On any exception the copy is dropped and ``collection`` is untouched. The model check
        happens before anything is copied. The client stays open (the caller owns it).
        ``resumable``: the copy is ``<collection>--a`` (or ``--b``, whichever is not live) and is kept when
        the write fails, so the next
        resumable write with the same schema continues in it instead of copying again. ``rebuild``: the
        copy starts empty, whatever model the collection was built with.
        """
        with _reaching(url, f"looking up collection {collection!r}"):
            current = _alias_target(client, collection)
            if current is None and client.collection_exists(collection):
                raise IndexUnavailableError(
                    f"{collection!r} is a plain collection, not an alias written by simtune; "
                    "choose another --collection"
                )
        if current is not None and not rebuild:
            cls(client, collection, expect=schema, url=url)
        staging = resumable_name(collection, current) if resumable else f"{collection}--{uuid.uuid4().hex[:12]}"
        if current is not None and storage is None:
            storage = cls(client, collection, url=url).storage
        if rebuild:
            with _reaching(url, f"dropping {staging!r}"):
                client.delete_collection(staging)
        if not (resumable and _continues(client, staging, schema, url)):
            _create(client, staging, schema, storage or StorageOptions(), url)
            with _reaching(url, f"copying {collection!r} into {staging!r}"):
                if current is not None and not rebuild:
                    _copy_points(client, current, staging)
        try:
            yield cls(client, staging, expect=schema, url=url)
        except BaseException:
            if not resumable:
                with _reaching(url, f"dropping the unfinished collection {staging!r}"):
                    client.delete_collection(staging)
            raise
        with _reaching(url, f"pointing alias {collection!r} at the new collection {staging!r}"):
            switch: list[Any] = (
                [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=collection))] if current else []
            )
            switch.append(
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=staging, alias_name=collection)
                )
            )
            client.update_collection_aliases(switch)
            if current is not None:
                client.delete_collection(current)

    @property
    def storage(self) -> StorageOptions:
        """The storage options the collection was created with."""
        with _reaching(self.url, f"reading the configuration of {self.collection!r}"):
            metadata = self._client.get_collection(self.collection).config.metadata or {}
        return StorageOptions.from_dict(json.loads(metadata.get(STORAGE_METADATA_KEY, "{}")))

    def iter_payloads(self, batch_size: int = 1024) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        offset = None
        while True:
            with _reaching(self.url, f"reading the points of {self.collection!r}"):
                records, offset = self._client.scroll(
                    self.collection, limit=batch_size, offset=offset, with_payload=True, with_vectors=False
                )
            yield [(str(record.id), dict(record.payload or {})) for record in records]
            if offset is None:
                return

    def _stored_schema(self) -> IndexSchema:
        metadata = self._client.get_collection(self.collection).config.metadata or {}
        if METADATA_KEY not in metadata:
            raise IndexUnavailableError(
                f"collection {self.collection!r} was not created by simtune (no {METADATA_KEY!r} in its metadata)"
            )
        return IndexSchema.from_dict(json.loads(metadata[METADATA_KEY]))

    def count(self) -> int:
        with _reaching(self.url, f"counting the points of {self.collection!r}"):
            return self._client.count(self.collection, exact=True).count

    def close(self) -> None:
        self._client.close()

    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        points = [models.PointStruct(id=i, vector=v.tolist(), payload=p) for i, v, p in zip(ids, vectors, payloads)]
        with _reaching(self.url, f"writing points to {self.collection!r}"):
            if len(points) <= UPLOAD_BATCH:
                self._client.upsert(self.collection, points, wait=True)
            else:  # batched, parallel requests; each retried by the client
                self._client.upload_points(
                    self.collection, points, batch_size=UPLOAD_BATCH, parallel=UPLOAD_PARALLEL, wait=True
                )

    def _search(self, vector: np.ndarray, k: int, filter: dict[str, str | int | float], exact: bool) -> list[SearchHit]:
        with _reaching(self.url, f"searching {self.collection!r}"):
            response = self._client.query_points(
                self.collection,
                query=vector.tolist(),
                limit=k,
                query_filter=_to_filter(filter),
                search_params=models.SearchParams(
                    hnsw_ef=search_width(k),
                    exact=exact,
                    quantization=models.QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
                ),
                with_payload=True,
            )
        return [SearchHit(str(p.id), float(p.score), dict(p.payload or {})) for p in response.points]

    def _get(self, point_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        with _reaching(self.url, f"reading point {point_id} of {self.collection!r}"):
            records = self._client.retrieve(self.collection, [point_id], with_payload=True, with_vectors=True)
        if not records:
            raise UnknownPointError(f"no point with id {point_id} in collection {self.collection!r}")
        return np.asarray(records[0].vector, dtype=np.float32), dict(records[0].payload or {})

    def _sample(self, n: int) -> list[SearchHit]:
        with _reaching(self.url, f"sampling {self.collection!r}"):
            response = self._client.query_points(
                self.collection, query=models.SampleQuery(sample=models.Sample.RANDOM), limit=n, with_payload=True
            )
        return [SearchHit(str(p.id), 0.0, dict(p.payload or {})) for p in response.points]

    def _delete(self, ids: list[str]) -> None:
        with _reaching(self.url, f"deleting points of {self.collection!r}"):
            self._client.delete(self.collection, models.PointIdsList(points=ids), wait=True)


@contextmanager
def _reaching(url: str | None, step: str) -> Iterator[None]:
    """The client's transport and HTTP failures as one ``IndexUnavailableError`` naming the server and the step."""
    try:
        yield
    except (ApiException, ValueError, AssertionError) as error:  # the client asserts a reply's shape
        if isinstance(error, SearchError):
            raise
        where = f"the Qdrant server at {url}" if url else "the Qdrant server"
        raise IndexUnavailableError(f"{where} failed while {step}: {_one_line(error)}") from error


def _one_line(error: Exception) -> str:
    """Qdrant's own error message, or what was wrong with a reply that is not Qdrant's (never the raw body)."""
    if isinstance(error, UnexpectedResponse):
        try:
            message = json.loads(error.content)["status"]["error"]
        except (ValueError, KeyError, TypeError):
            return (
                f"it answered HTTP {error.status_code} {error.reason_phrase} with a body that is not a Qdrant "
                "reply; is the URL a Qdrant server's (e.g. http://localhost:6333)?"
            )
        return f"HTTP {error.status_code}: {str(message).splitlines()[0][:300]}"
    if isinstance(error, ResponseHandlingException):
        return f"its reply is not a Qdrant server's ({str(error.source).splitlines()[0][:200]})"
    if isinstance(error, AssertionError):
        return f"its reply is not a Qdrant server's ({error}); is the URL a Qdrant server's?"
    lines = str(error).splitlines() or [type(error).__name__]
    return lines[0][:300] + (" ..." if len(lines) > 1 or len(lines[0]) > 300 else "")


def client_for(url: str, api_key: str | None = None) -> QdrantClient:
    """A client for ``url``; a malformed URL is an ``IndexUnavailableError``. The version handshake is skipped
    (it only warns), so an unreachable server fails on the first real request, with one clear error."""
    with _reaching(url, "parsing its URL"):
        return QdrantClient(url=url, api_key=api_key, check_compatibility=False)


def resumable_name(collection: str, current: str | None) -> str:
    """The collection a resumable write of alias ``collection`` (now pointing at ``current``) fills."""
    first, second = (f"{collection}{suffix}" for suffix in RESUMABLE_SUFFIXES)
    return second if current == first else first


def pending_write(client: QdrantClient, collection: str, url: str | None = None) -> str | None:
    """The unfinished resumable write of ``collection`` a killed writer left, if any."""
    with _reaching(url, f"looking up collection {collection!r}"):
        staging = resumable_name(collection, _alias_target(client, collection))
        return staging if client.collection_exists(staging) else None


def _create(client: QdrantClient, name: str, schema: IndexSchema, storage: StorageOptions, url: str | None) -> None:
    """An empty collection for ``schema`` stored as ``storage`` says, with its filter fields indexed."""
    on_disk = storage.on_disk or None
    quantization = (
        models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=INT8_QUANTILE, always_ram=True)
        )
        if storage.quantized
        else None
    )
    with _reaching(url, f"creating collection {name!r}"):
        client.create_collection(
            name,
            vectors_config=models.VectorParams(
                size=schema.embedding_size, distance=_DISTANCES[schema.distance], on_disk=on_disk
            ),
            hnsw_config=models.HnswConfigDiff(on_disk=on_disk) if on_disk else None,
            on_disk_payload=on_disk,
            quantization_config=quantization,
            metadata={METADATA_KEY: schema.to_json(), STORAGE_METADATA_KEY: json.dumps(storage.to_dict())},
        )
        for field_name, kind in schema.filter_fields.items():
            client.create_payload_index(name, field_name, _FIELD_TYPES[kind])


def _continues(client: QdrantClient, staging: str, schema: IndexSchema, url: str | None) -> bool:
    """Whether ``staging`` is a resumable write's leftover for this same schema; a leftover for another is dropped."""
    with _reaching(url, f"looking up collection {staging!r}"):
        if not client.collection_exists(staging):
            return False
        try:
            QdrantServerIndex(client, staging, expect=schema, url=url)
            return True
        except SearchError:
            client.delete_collection(staging)
            return False


def _alias_target(client: QdrantClient, alias: str) -> str | None:
    return next((a.collection_name for a in client.get_aliases().aliases if a.alias_name == alias), None)


def _copy_points(
    client: QdrantClient, source: str, target: str, batch_size: int = UPLOAD_BATCH * UPLOAD_PARALLEL
) -> None:
    offset = None
    while True:
        records, offset = client.scroll(source, limit=batch_size, offset=offset, with_payload=True, with_vectors=True)
        if records:
            points = [models.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in records]
            client.upload_points(target, points, batch_size=UPLOAD_BATCH, parallel=UPLOAD_PARALLEL, wait=True)
        if offset is None:
            return


def _to_filter(conditions: dict[str, str | int | float]) -> models.Filter | None:
    if not conditions:
        return None
    return models.Filter(must=[_condition(name, value) for name, value in conditions.items()])


def _condition(name: str, value: str | int | float) -> models.FieldCondition:
    """Keywords and integers match exactly; a float field matches the one-point range [value, value]."""
    if isinstance(value, float):
        return models.FieldCondition(key=name, range=models.Range(gte=value, lte=value))
    return models.FieldCondition(key=name, match=models.MatchValue(value=value))
