"""Distances by name: ``get_distance("cosine")``."""

from simtune.distances.base import Distance
from simtune.distances.cosine import Cosine
from simtune.distances.dot_product import DotProduct
from simtune.distances.euclidean import Euclidean
from simtune.distances.manhattan import Manhattan

DISTANCES: dict[str, type[Distance]] = {cls.name: cls for cls in (Cosine, DotProduct, Euclidean, Manhattan)}


def get_distance(distance: "str | Distance") -> Distance:
    """Accepts a Distance or its name; an unknown name lists the known ones."""
    if isinstance(distance, Distance):
        return distance
    try:
        return DISTANCES[distance]()
    except KeyError:
        raise ValueError(f"unknown distance {distance!r}; expected one of {sorted(DISTANCES)}") from None


__all__ = ["Distance", "Cosine", "DotProduct", "Euclidean", "Manhattan", "DISTANCES", "get_distance"]
