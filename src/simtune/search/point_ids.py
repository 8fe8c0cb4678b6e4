"""Stable point ids: the same key (an image path) always maps to the same id, so re-indexing replaces."""

from __future__ import annotations

import uuid

from simtune.search.errors import InvalidQueryError

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/simtune/simtune/points")


def point_id(key: str) -> str:
    """A UUID (Qdrant's string id type) derived from ``key``."""
    return str(uuid.uuid5(_NAMESPACE, key))


def parse_point_id(text: str) -> str:
    """The canonical form of a point id given by a user; anything but a UUID (e.g. ``../x``) is rejected."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        raise InvalidQueryError(f"invalid point id {text!r}: expected a UUID like {point_id('example')}") from None
