"""Batch collation for similarity samples: features for the encoders plus the labels a loss needs.

Collate functions are classes, not closures, so loaders stay picklable for ``num_workers > 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample

FeatureCollate = Callable[[list[Any]], Any]


def pass_through(objects: list[Any]) -> list[Any]:
    """Default feature collate: hand the raw objects on (the model's collate is installed later)."""
    return objects


def _check_items(batch: Sequence[Any], expected: type, wrapper_hint: str) -> None:
    for index, item in enumerate(batch):
        if not isinstance(item, expected):
            raise TypeError(
                f"batch item {index} is {type(item).__name__}, expected {expected.__name__}; {wrapper_hint}"
            )


class GroupCollate:
    """``list[SimilarityGroupSample] -> (features, {"groups": LongTensor (B,)})``."""

    def __init__(self, feature_collate: FeatureCollate = pass_through):
        self.feature_collate = feature_collate

    def __call__(self, batch: Sequence[SimilarityGroupSample]) -> tuple[Any, dict[str, torch.Tensor]]:
        _check_items(batch, SimilarityGroupSample, "wrap (object, label) datasets with simtune.data.GroupDataset")
        groups = torch.tensor([int(sample.group) for sample in batch], dtype=torch.long)
        return self.feature_collate([sample.obj for sample in batch]), {"groups": groups}


class PairCollate:
    """``list[SimilarityPairSample]`` of P pairs ``-> (features of 2P objects, targets)``.

    Objects are laid out as all ``obj_a`` then all ``obj_b``, so ``pairs[i] == (i, P + i)``;
    targets are ``pairs`` (P, 2) long, ``labels`` (P,) float scores and ``subgroups`` (2P,) long.
    """

    def __init__(self, feature_collate: FeatureCollate = pass_through):
        self.feature_collate = feature_collate

    def __call__(self, batch: Sequence[SimilarityPairSample]) -> tuple[Any, dict[str, torch.Tensor]]:
        _check_items(batch, SimilarityPairSample, "build SimilarityPairSample(obj_a, obj_b, score, subgroup) items")
        count = len(batch)
        objects = [sample.obj_a for sample in batch] + [sample.obj_b for sample in batch]
        indices = torch.arange(count, dtype=torch.long)
        subgroups = torch.tensor([int(sample.subgroup) for sample in batch], dtype=torch.long)
        targets = {
            "pairs": torch.stack([indices, indices + count], dim=1),
            "labels": torch.tensor([float(sample.score) for sample in batch], dtype=torch.float32),
            "subgroups": torch.cat([subgroups, subgroups]),
        }
        return self.feature_collate(objects), targets
