"""How a collection stores its vectors: for indexes larger than memory, or than memory allows cheaply.

``quantization="int8"``: Qdrant's scalar quantization keeps a 1-byte-per-dimension copy of every vector
in RAM and searches it, then rescores the best candidates (``RESCORE_OVERSAMPLING`` times ``k``) with the
original float32 vectors, so recall stays near exact search at a quarter of the vector memory.
``on_disk=True`` keeps the original vectors, the HNSW graph and the payloads in memory-mapped files
instead of RAM (the int8 copy, when there is one, stays in RAM: that is what makes on-disk fast).
Both are fixed when a collection is created; an existing index keeps what it was built with.

HNSW walks its graph with a beam of ``search_width(k)`` candidates (Qdrant's ``hnsw_ef``), on both backends;
the engines' own default (their ``ef_construct``, whatever ``k``) loses recall as a collection grows, and
that loss, not int8's, is what separates an index's answers from exact search (docs/catalog.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

QUANTIZATIONS = ("none", "int8")
# Values beyond this quantile are clipped when int8 ranges are chosen: outliers would waste the 256 levels.
INT8_QUANTILE = 0.99
RESCORE_OVERSAMPLING = 2.0
# The beam: SEARCH_WIDTH_PER_RESULT candidates per result asked for, at least MIN_SEARCH_WIDTH.
MIN_SEARCH_WIDTH = 128
SEARCH_WIDTH_PER_RESULT = 16


def search_width(k: int) -> int:
    """HNSW's beam (``hnsw_ef``) for a search of ``k`` results: recall falls when the beam is not well above ``k``."""
    return max(MIN_SEARCH_WIDTH, SEARCH_WIDTH_PER_RESULT * k)


@dataclass(frozen=True)
class StorageOptions:
    quantization: str = "none"
    on_disk: bool = False

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"unknown quantization {self.quantization!r}; expected one of {', '.join(QUANTIZATIONS)}")

    @property
    def quantized(self) -> bool:
        return self.quantization != "none"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> StorageOptions:
        """What an index recorded; an index recorded before these options existed used the defaults."""
        data = data or {}
        return cls(quantization=str(data.get("quantization", "none")), on_disk=bool(data.get("on_disk", False)))

    def describe(self) -> str:
        parts = ["int8 quantization with rescoring" if self.quantized else "float32 vectors"]
        parts.append("on disk" if self.on_disk else "in RAM")
        return ", ".join(parts)
