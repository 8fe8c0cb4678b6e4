"""The vector index interface: validate input once here, let each backend only talk to its engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simtune.search.errors import InvalidQueryError
from simtune.search.point_ids import parse_point_id
from simtune.search.schema import IndexSchema


@dataclass(frozen=True)
class SearchHit:
    id: str
    score: float
    payload: dict[str, Any]


class VectorIndex(ABC):
    """A collection of (id, vector, payload) points built with one model (``schema``).

    Backends implement the underscored methods plus ``count`` and ``close``; the public methods
    check ids, vector sizes, ``k`` and filters so every backend rejects bad input the same way.
    Scores are the engine's: higher is closer for cosine/dot, lower for euclidean/manhattan.
    """

    schema: IndexSchema
    # How many points a streaming writer gathers per ``upsert`` (0: it writes each batch as it comes).
    write_points: int = 0

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, payloads: Sequence[Mapping[str, Any]]) -> None:
        """Inserts or replaces points (same id -> replaced)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.schema.embedding_size:
            raise InvalidQueryError(
                f"vectors must have shape (n, {self.schema.embedding_size}), got {tuple(vectors.shape)}"
            )
        if not len(ids) == len(payloads) == len(vectors):
            raise InvalidQueryError(f"got {len(ids)} ids, {len(vectors)} vectors and {len(payloads)} payloads")
        if not np.isfinite(vectors).all():
            raise InvalidQueryError("vectors contain NaN or infinite values")
        if len(ids):
            self._upsert([parse_point_id(i) for i in ids], vectors, [dict(p) for p in payloads])

    def search(
        self, vector: Any, k: int = 10, filter: Mapping[str, Any] | None = None, exact: bool = False
    ) -> list[SearchHit]:
        """The ``k`` nearest points whose payload equals every ``filter`` value; ``exact`` skips HNSW."""
        k = self.schema.check_k(k)
        conditions = self.schema.check_filter(filter)
        return self._search(self._check_vector(vector), k, conditions, exact)

    def similar_to(self, point_id: str, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[SearchHit]:
        """The ``k`` nearest neighbours of an indexed point, the point itself excluded."""
        point_id = parse_point_id(point_id)
        k = self.schema.check_k(k)
        conditions = self.schema.check_filter(filter)
        vector, _ = self._get(point_id)
        hits = self._search(vector, k + 1, conditions, False)
        return [hit for hit in hits if hit.id != point_id][:k]

    def get(self, point_id: str) -> tuple[np.ndarray, dict[str, Any]]:
        """The stored vector and payload of one point; ``UnknownPointError`` if absent."""
        return self._get(parse_point_id(point_id))

    def sample(self, n: int = 1) -> list[SearchHit]:
        """``n`` random points (scores are meaningless), e.g. for a "random car" button."""
        return self._sample(self.schema.check_k(n))

    def delete(self, ids: Sequence[str]) -> None:
        if len(ids):
            self._delete([parse_point_id(i) for i in ids])

    def _check_vector(self, vector: Any) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.schema.embedding_size:
            raise InvalidQueryError(
                f"query vector has {vector.shape[0]} dimensions; the index holds {self.schema.embedding_size}-d vectors"
            )
        if not np.isfinite(vector).all():
            raise InvalidQueryError("query vector contains NaN or infinite values")
        return vector

    def flush(self) -> None:
        """Makes every completed write durable; backends whose writes are durable on return have nothing to do."""
        return None

    def verify_files(self) -> None:
        """``IndexUnavailableError`` if the index's storage was damaged since it was opened; cheap enough for
        every health check. Backends without local files have nothing to check."""
        return None

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def iter_payloads(self, batch_size: int = 1024) -> Iterator[list[tuple[str, dict[str, Any]]]]:
        """Every point's id and payload, a batch at a time, without vectors (e.g. to compare with a folder)."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None: ...

    @abstractmethod
    def _search(
        self, vector: np.ndarray, k: int, filter: dict[str, str | int | float], exact: bool
    ) -> list[SearchHit]: ...

    @abstractmethod
    def _get(self, point_id: str) -> tuple[np.ndarray, dict[str, Any]]: ...

    @abstractmethod
    def _sample(self, n: int) -> list[SearchHit]: ...

    @abstractmethod
    def _delete(self, ids: list[str]) -> None: ...

    def __enter__(self) -> VectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
