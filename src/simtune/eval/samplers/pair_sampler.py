from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Sequence
from itertools import permutations
from typing import Any

import torch

from simtune.data.samples import SimilarityPairSample
from simtune.eval.samplers.base import RetrievalTask, Sampler, check_sample_size, choose, items_of


class PairSampler(Sampler):
    """Objects of ``sample_size`` seeded pairs (-1: all pairs) query every distinct object.

    The gallery is every distinct object of the dataset (an object in several pairs is encoded and
    ranked once: equal hashable objects such as paths are merged, unhashable ones by identity). For a
    query, relevant = paired with it with ``score > 0`` (either direction); its own entry and objects
    sharing a non-zero ``subgroup`` with it (never negatives for each other) are left out of its ranking.
    The positional arguments are Quaterion's; ``seed`` (the pair sample) is keyword-only.
    """

    def __init__(
        self,
        sample_size: int = -1,
        distinguish: bool = False,
        encode_batch_size: int = 32,
        device: str | torch.device | None = None,
        log_progress: bool = True,
        *,
        seed: int = 0,
    ):
        if distinguish:
            raise ValueError(
                "distinguish=True (Quaterion: obj_a compared with obj_b only) is not supported: PairSampler ranks "
                "every object of the pairs against all of them; use PairSampler(sample_size) with distinguish=False"
            )
        self.sample_size = check_sample_size(sample_size)
        self.seed = seed
        self._set_encoding_options(encode_batch_size, device, log_progress)

    def sample(self, dataset: Sequence, gallery_dataset: Sequence | None = None) -> RetrievalTask:
        if gallery_dataset is not None:
            raise ValueError("PairSampler takes no gallery_dataset: the gallery is the pairs' objects")
        pairs = items_of(dataset, SimilarityPairSample, "dataset")
        position: dict[Hashable, int] = {}
        objects: list[Any] = []

        def index_of(obj: Any) -> int:
            key = _key(obj)
            if key not in position:
                position[key] = len(objects)
                objects.append(obj)
            return position[key]

        ends = torch.tensor([(index_of(pair.obj_a), index_of(pair.obj_b)) for pair in pairs])
        members: dict[int, set[int]] = defaultdict(set)
        for pair, (a, b) in zip(pairs, ends.tolist()):
            if pair.subgroup != 0:
                members[pair.subgroup].update((a, b))
        positive = torch.tensor([pair.score > 0 for pair in pairs]) & (ends[:, 0] != ends[:, 1])
        relevant = torch.cat([ends[positive], ends[positive].flip(1)])
        same_subgroup = {edge for group in members.values() for edge in permutations(sorted(group), 2)}
        same_subgroup -= set(map(tuple, relevant.tolist()))
        everyone = torch.arange(len(objects))
        excluded = torch.cat(
            [torch.stack([everyone, everyone], 1), torch.tensor(sorted(same_subgroup), dtype=torch.long).view(-1, 2)]
        )

        query_rows = torch.unique(ends[choose(len(pairs), self.sample_size, self.seed)])
        query_position = torch.full((len(objects),), -1)
        query_position[query_rows] = torch.arange(len(query_rows))

        def for_queries(object_pairs: torch.Tensor) -> torch.Tensor:
            kept = object_pairs[query_position[object_pairs[:, 0]] >= 0]
            return torch.stack([query_position[kept[:, 0]], kept[:, 1]], 1)

        return RetrievalTask(
            objects=objects,
            query_rows=query_rows,
            gallery_rows=everyone,
            query_gallery_index=query_rows,
            relevant_pairs=for_queries(relevant),
            excluded_pairs=for_queries(excluded),
        )


def _key(obj: Any) -> Hashable:
    try:
        hash(obj)
    except TypeError:
        return ("id", id(obj))
    return ("value", obj)
