"""The Stanford Cars preset: make and year parsed from class names, the ``.mat`` layout, car words."""

from __future__ import annotations

from typing import Any

from simtune.apps.cars.metadata import parse_class_name
from simtune.apps.cars.stanford_mat import StanfordCarsMatReader
from simtune.apps.images.data.preset import Preset


def car_metadata(class_name: str) -> dict[str, Any]:
    """The payload fields a car class carries besides its name: ``make`` and, where the name ends in one, ``year``."""
    parsed = parse_class_name(class_name)
    return {"make": parsed.make, "year": parsed.year}


CARS = Preset(
    name="cars",
    title="Similar cars",
    noun="cars",
    fields={"make": "keyword", "year": "integer"},
    describe=car_metadata,
    readers=(StanfordCarsMatReader(),),
)
