"""Similarity losses: ``GroupLoss(embeddings, groups)`` and ``PairwiseLoss(embeddings, pairs, labels, subgroups)``."""

from simtune.losses.arcface_loss import ArcFaceLoss
from simtune.losses.base import GroupLoss, PairwiseLoss, SimilarityLoss
from simtune.losses.center_loss import CenterLoss
from simtune.losses.circle_loss import CircleLoss
from simtune.losses.contrastive_loss import ContrastiveLoss
from simtune.losses.cosface_loss import CosFaceLoss
from simtune.losses.fast_ap_loss import FastAPLoss
from simtune.losses.multi_similarity_loss import MultiSimilarityLoss
from simtune.losses.multiple_negatives_ranking_loss import MultipleNegativesRankingLoss
from simtune.losses.online_contrastive_loss import OnlineContrastiveLoss
from simtune.losses.proxy_anchor_loss import ProxyAnchorLoss
from simtune.losses.pytorch_metric_learning_loss import PytorchMetricLearningLoss
from simtune.losses.softmax_loss import SoftmaxLoss
from simtune.losses.triplet_loss import TripletLoss

__all__ = [
    "SimilarityLoss",
    "GroupLoss",
    "PairwiseLoss",
    "ArcFaceLoss",
    "CenterLoss",
    "CircleLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "FastAPLoss",
    "MultiSimilarityLoss",
    "MultipleNegativesRankingLoss",
    "OnlineContrastiveLoss",
    "ProxyAnchorLoss",
    "PytorchMetricLearningLoss",
    "SoftmaxLoss",
    "TripletLoss",
]
