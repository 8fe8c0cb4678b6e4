"""Similarity losses: ``GroupLoss(embeddings, groups)`` and ``PairwiseLoss(embeddings, pairs, labels, subgroups)``."""

from simtune.losses.base import GroupLoss, PairwiseLoss, SimilarityLoss
from simtune.losses.center_loss import CenterLoss
from simtune.losses.contrastive_loss import ContrastiveLoss
from simtune.losses.multiple_negatives_ranking_loss import MultipleNegativesRankingLoss
from simtune.losses.online_contrastive_loss import OnlineContrastiveLoss
from simtune.losses.pytorch_metric_learning_loss import PytorchMetricLearningLoss
from simtune.losses.softmax_loss import SoftmaxLoss
from simtune.losses.triplet_loss import TripletLoss

__all__ = [
    "SimilarityLoss",
    "GroupLoss",
    "PairwiseLoss",
    "CenterLoss",
    "ContrastiveLoss",
    "MultipleNegativesRankingLoss",
    "OnlineContrastiveLoss",
    "PytorchMetricLearningLoss",
    "SoftmaxLoss",
    "TripletLoss",
]
