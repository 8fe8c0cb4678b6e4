"""Vector search over embeddings: one interface (``VectorIndex``), two real Qdrant backends.

``EdgeIndex`` (default) runs Qdrant's engine in-process and persists to a folder; ``QdrantServerIndex``
talks to a Qdrant server or cluster. Both record the model they were built with (``IndexSchema``).
"""

from simtune.search.base import SearchHit, VectorIndex
from simtune.search.edge_index import EdgeIndex
from simtune.search.embedder import Embedder
from simtune.search.errors import (
    ImageTooLargeError,
    IndexUnavailableError,
    InvalidImageError,
    InvalidQueryError,
    ModelMismatchError,
    SearchError,
    UnknownPointError,
)
from simtune.search.point_ids import parse_point_id, point_id
from simtune.search.qdrant_server_index import QdrantServerIndex
from simtune.search.schema import MAX_K, IndexSchema, parse_filters

__all__ = [
    "VectorIndex",
    "SearchHit",
    "EdgeIndex",
    "Embedder",
    "QdrantServerIndex",
    "IndexSchema",
    "MAX_K",
    "parse_filters",
    "point_id",
    "parse_point_id",
    "SearchError",
    "InvalidQueryError",
    "UnknownPointError",
    "ModelMismatchError",
    "InvalidImageError",
    "ImageTooLargeError",
    "IndexUnavailableError",
]
