"""Losses against one learned vector per class (class weights, proxies), all on cosine similarity.

Only directions matter, so embeddings and class vectors are L2-normalised before they meet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.distances.base import safe_sqrt
from simtune.functional.logsumexp import masked_logsumexp


def cosine_to_classes(embeddings: Tensor, class_vectors: Tensor) -> Tensor:
    """(B, C) cosine between every embedding (B, D) and every class vector (C, D)."""
    return F.normalize(embeddings, dim=-1) @ F.normalize(class_vectors, dim=-1).T


def _margin_cross_entropy(cosine: Tensor, groups: Tensor, target_logit: Tensor, scale: float) -> Tensor:
    logits = cosine.scatter(1, groups[:, None], target_logit)
    return F.cross_entropy(scale * logits, groups)


def cosface_loss(embeddings: Tensor, weights: Tensor, groups: Tensor, margin: float, scale: float) -> Tensor:
    """CosFace (Wang et al. 2018): the true-class logit is ``scale * (cos(theta) - margin)``."""
    cosine = cosine_to_classes(embeddings, weights)
    target = cosine.gather(1, groups[:, None])
    return _margin_cross_entropy(cosine, groups, target - margin, scale)


def arcface_loss(embeddings: Tensor, weights: Tensor, groups: Tensor, margin: float, scale: float) -> Tensor:
    """ArcFace (Deng et al. 2019): the true-class logit is ``scale * cos(theta + margin)``.

    cos(theta + m) is expanded as cos*cos(m) - sin*sin(m) because acos has an infinite gradient at
    cos = +-1. Past theta = pi - m, cos(theta + m) would rise again and reward moving away from the
    class, so there the logit continues as cos(theta) - m*sin(m) (as in insightface and
    pytorch-metric-learning), which keeps it decreasing in theta.
    """
    cosine = cosine_to_classes(embeddings, weights)
    target = cosine.gather(1, groups[:, None])
    sine = safe_sqrt(1.0 - target * target)
    with_margin = target * math.cos(margin) - sine * math.sin(margin)
    fallback = target - margin * math.sin(margin)
    target_logit = torch.where(target >= -math.cos(margin), with_margin, fallback)
    return _margin_cross_entropy(cosine, groups, target_logit, scale)


def proxy_anchor_loss(embeddings: Tensor, proxies: Tensor, groups: Tensor, margin: float, alpha: float) -> Tensor:
    """Proxy-Anchor (Kim et al. 2020); each proxy is an anchor pulling its class and pushing the rest.

    ``1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x,p) - margin)))
      + 1/|P| sum_{p in P} log(1 + sum_{x in X_p-} exp(alpha (s(x,p) + margin)))``
    with P+ the proxies whose class is in the batch and P all proxies.
    """
    cosine = cosine_to_classes(embeddings, proxies)
    positive = F.one_hot(groups, proxies.shape[0]).bool()
    pull = masked_logsumexp(-alpha * (cosine - margin), positive, dim=0, add_one=True)
    push = masked_logsumexp(alpha * (cosine + margin), ~positive, dim=0, add_one=True)
    proxies_with_positives = positive.any(0).sum().clamp_min(1)
    return pull.sum() / proxies_with_positives + push.mean()
