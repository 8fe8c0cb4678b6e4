"""One image file found in a catalog folder, with what identifies its version and its layout's fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FoundFile:
    """``path`` is absolute (the point id derives from it); ``size`` and ``mtime_ns`` tell a changed file
    from an unchanged one; ``fields`` are the payload fields the layout gives it (e.g. its class name)."""

    path: str
    size: int
    mtime_ns: int
    fields: dict[str, Any] = field(default_factory=dict)
