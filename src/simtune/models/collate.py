"""The batch a SimilarityModel consumes: every encoder collates the same raw objects its own way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ModelCollate:
    """``list[obj] -> {encoder_name: that encoder's batch}``; a class so DataLoader workers can pickle it."""

    def __init__(self, collate_fns: dict[str, Callable[[list[Any]], Any]]) -> None:
        self.collate_fns = collate_fns

    def __call__(self, objects: list[Any]) -> dict[str, Any]:
        return {name: collate(objects) for name, collate in self.collate_fns.items()}
