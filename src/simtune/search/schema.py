"""What an index was built with: the model (fingerprint + embedding size), distance and filterable fields.

Stored with the collection so that a query embedded by another model fails loudly instead of
returning plausible-looking garbage.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from simtune.search.errors import InvalidQueryError, ModelMismatchError

FIELD_TYPES = ("keyword", "integer", "float")
MAX_K = 1000
# Qdrant stores integer payloads as signed 64-bit; a larger value cannot match and overflows its client.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class IndexSchema:
    """``filter_fields`` maps payload field name -> ``"keyword"``, ``"integer"`` or ``"float"``. ``data_root`` is the
    resolved folder the indexed files were read from, so a server can refuse any file outside it."""

    fingerprint: str
    embedding_size: int
    distance: str = "cosine"
    filter_fields: Mapping[str, str] = field(default_factory=dict)
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.embedding_size < 1:
            raise ValueError(f"embedding_size must be positive, got {self.embedding_size}")
        if self.distance not in ("cosine", "dot_product", "euclidean", "manhattan"):
            raise ValueError(f"unsupported distance {self.distance!r}")
        for name, kind in self.filter_fields.items():
            if kind not in FIELD_TYPES:
                raise ValueError(f"filter field {name!r} has type {kind!r}; expected one of {FIELD_TYPES}")
        object.__setattr__(self, "filter_fields", dict(self.filter_fields))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexSchema:
        return cls(
            **{k: data[k] for k in ("fingerprint", "embedding_size", "distance", "filter_fields")},
            data_root=data.get("data_root"),
        )

    def check_model(self, fingerprint: str, embedding_size: int) -> None:
        """Raises ``ModelMismatchError`` unless the given model is the one this index was built with."""
        if (self.fingerprint, self.embedding_size) != (fingerprint, embedding_size):
            raise ModelMismatchError(
                f"the index was built with model {self.fingerprint} ({self.embedding_size}-d), "
                f"not with model {fingerprint} ({embedding_size}-d); "
                "re-index with this model or query with the model the index was built with"
            )

    def check_same_model(self, other: IndexSchema) -> None:
        """``check_model`` plus the same distance and filter fields (what a writer must agree on)."""
        self.check_model(other.fingerprint, other.embedding_size)
        if self.distance != other.distance or dict(self.filter_fields) != dict(other.filter_fields):
            raise ModelMismatchError(
                f"the index uses distance {self.distance!r} and fields {sorted(self.filter_fields)}, "
                f"not {other.distance!r} and {sorted(other.filter_fields)}"
            )

    def check_k(self, k: Any) -> int:
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidQueryError(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
        return k

    def check_filter(self, filter: Mapping[str, Any] | None) -> dict[str, str | int | float]:
        """Validates field names and coerces values (``"2012"`` -> 2012 for integer fields, ``"2.5"`` -> 2.5
        for float fields: a float condition is an exact match, as the engines compare float payloads)."""
        checked: dict[str, str | int | float] = {}
        for name, value in (filter or {}).items():
            kind = self.filter_fields.get(name)
            if kind is None:
                fields = ", ".join(sorted(self.filter_fields)) or "none"
                raise InvalidQueryError(f"unknown filter field {name!r}; filterable fields: {fields}")
            if kind == "integer":
                try:
                    number = int(value)
                except (TypeError, ValueError):
                    raise InvalidQueryError(f"filter {name}={value!r}: {name} must be an integer") from None
                if isinstance(value, bool) or not INT64_MIN <= number <= INT64_MAX:
                    raise InvalidQueryError(
                        f"filter {name}={value!r}: {name} must be an integer from {INT64_MIN} to {INT64_MAX}"
                    )
                checked[name] = number
            elif kind == "float":
                checked[name] = _float_value(name, value)
            else:
                if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
                    raise InvalidQueryError(f"filter {name}={value!r}: expected a non-empty text value")
                checked[name] = str(value)
        return checked


def _float_value(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise InvalidQueryError(f"filter {name}={value!r}: {name} must be a finite number")
    return number


def parse_filters(expressions: list[str] | None) -> dict[str, str]:
    """``["make=BMW", "year=2012"]`` -> ``{"make": "BMW", "year": "2012"}`` (the CLI/HTTP form)."""
    parsed: dict[str, str] = {}
    for expression in expressions or []:
        name, sep, value = expression.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidQueryError(f"invalid filter {expression!r}: expected FIELD=VALUE, e.g. make=BMW")
        if name.strip() in parsed:
            raise InvalidQueryError(f"filter field {name.strip()!r} given twice")
        parsed[name.strip()] = value.strip()
    return parsed
