"""DataLoaders for group and pair samples: plain torch DataLoaders with a similarity collate.

Because they are ordinary DataLoaders, ``shuffle``, ``batch_sampler`` (e.g.
``ClassBalancedBatchSampler``), ``num_workers`` and Lightning all work unchanged. ``simtune.fit``
rebuilds an equivalent loader from ``loader.dataset``, its sampler or batch sampler and
``collate_type`` with the model's collate; ``set_feature_collate`` installs one for direct iteration.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from simtune.data.collate import FeatureCollate, GroupCollate, PairCollate, pass_through


class _SimilarityDataLoader(DataLoader):
    collate_type: type

    def __init__(self, dataset: Dataset, feature_collate: FeatureCollate = pass_through, **kwargs: Any):
        collate_fn = kwargs.pop("collate_fn", None)
        if collate_fn is not None:
            # A copy of a loader of this kind: Lightning re-creates loaders this way to inject its
            # DistributedSampler under DDP, passing the original's collate_fn back in.
            if not isinstance(collate_fn, self.collate_type) or feature_collate is not pass_through:
                raise ValueError(
                    f"{type(self).__name__} builds its own collate_fn; pass feature_collate= (or call "
                    "set_feature_collate) for the objects' part"
                )
            feature_collate = collate_fn.feature_collate
        super().__init__(dataset, collate_fn=self.collate_type(feature_collate), **kwargs)

    @property
    def feature_collate(self) -> FeatureCollate:
        return self.collate_fn.feature_collate

    def set_feature_collate(self, feature_collate: FeatureCollate) -> None:
        """Install the function that turns a list of objects into encoder input (the model's collate).

        Call it before iterating: worker processes copy the collate when an iterator starts.
        """
        self.collate_fn = self.collate_type(feature_collate)


class GroupSimilarityDataLoader(_SimilarityDataLoader):
    """Batches of ``SimilarityGroupSample`` as ``(features, {"groups": LongTensor (B,)})``."""

    collate_type = GroupCollate


class PairsSimilarityDataLoader(_SimilarityDataLoader):
    """Batches of P ``SimilarityPairSample`` as ``(features of 2P objects, {"pairs", "labels", "subgroups"})``.

    Objects are all ``obj_a`` then all ``obj_b``: ``pairs[i] == (i, P + i)``.
    """

    collate_type = PairCollate
