"""What makes a collection more than labelled images: its title, its per-class metadata and its own layouts.

The generic app (``simtune images``) reads any labelled collection; a preset (``simtune cars``) adds
metadata parsed from class names (make, year), a layout of its own and the words its pages use. Every
later step reads these facts from the prepared dataset (``dataset.json``), not from the preset, so the
index, the web page and the report of a run describe its data whichever command built it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from simtune.apps.images.data.readers import CollectionReader


def no_metadata(class_name: str) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Preset:
    """``name``: the command (``simtune NAME``), the default run folder (``runs/NAME``) and Qdrant collection.
    ``fields``: metadata field -> payload type (``keyword`` or ``integer``, checked by the index schema);
    ``describe(class_name)`` gives their values (a None value is left out of the payload). ``readers`` are
    tried before the generic layouts."""

    name: str
    title: str
    noun: str
    fields: dict[str, str] = field(default_factory=dict)
    describe: Callable[[str], dict[str, Any]] = no_metadata
    readers: tuple[CollectionReader, ...] = ()


IMAGES = Preset(name="images", title="Similar images", noun="images")
