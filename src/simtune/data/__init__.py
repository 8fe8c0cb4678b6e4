"""Training data for similarity learning: samples, their loaders, and class-balanced batching."""

from simtune.data.class_balanced_sampler import ClassBalancedBatchSampler
from simtune.data.collate import GroupCollate, PairCollate, pass_through
from simtune.data.group_dataset import GroupDataset, group_labels
from simtune.data.loaders import GroupSimilarityDataLoader, PairsSimilarityDataLoader
from simtune.data.samples import SimilarityGroupSample, SimilarityPairSample
from simtune.data.text_pairs import read_jsonl, read_text_pairs

__all__ = [
    "ClassBalancedBatchSampler",
    "GroupCollate",
    "PairCollate",
    "pass_through",
    "GroupDataset",
    "group_labels",
    "GroupSimilarityDataLoader",
    "PairsSimilarityDataLoader",
    "SimilarityGroupSample",
    "SimilarityPairSample",
    "read_jsonl",
    "read_text_pairs",
]
