"""Pair-weighting losses on a (B, N) similarity matrix: Circle and Multi-Similarity (with its miner).

Both score every anchor against its positives and negatives in one logsumexp each, so memory stays
O(B N) and no pair list is ever materialised. The columns are the batch (N = B) or the batch followed
by references with groups ``ref_groups`` (cross-batch memory), as in ``simtune.functional.mining``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.functional.logsumexp import masked_logsumexp
from simtune.functional.mining import negative_mask, positive_mask


def circle_loss(similarity: Tensor, groups: Tensor, m: float, gamma: float, ref_groups: Tensor | None = None) -> Tensor:
    """Circle loss (Sun et al. 2020), per anchor, averaged over anchors with a positive and a negative.

    ``softplus(logsumexp_p(-gamma a_p (s_p - (1 - m))) + logsumexp_n(gamma a_n (s_n - m)))`` with
    self-paced weights ``a_p = relu(1 + m - s_p)``, ``a_n = relu(s_n + m)`` held constant in the
    backward pass, as in the paper. A batch where no anchor has both gives 0.
    """
    positive, negative = positive_mask(groups, ref_groups), negative_mask(groups, ref_groups)
    s = similarity
    weight_positive = torch.relu(1.0 + m - s.detach())
    weight_negative = torch.relu(s.detach() + m)
    pull = masked_logsumexp(-gamma * weight_positive * (s - (1.0 - m)), positive)
    push = masked_logsumexp(gamma * weight_negative * (s - m), negative)
    valid = positive.any(1) & negative.any(1)
    losses = torch.where(valid, F.softplus(pull + push), torch.zeros_like(pull))
    return losses.sum() / valid.sum().clamp_min(1)


@torch.no_grad()
def multi_similarity_mining(
    similarity: Tensor, groups: Tensor, epsilon: float, ref_groups: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """The Multi-Similarity pair miner: (positive, negative) masks of the informative pairs, shaped like
    ``similarity``.

    A negative is kept if it is more similar than the anchor's least similar positive minus epsilon;
    a positive is kept if it is less similar than the anchor's most similar negative plus epsilon.
    """
    positive, negative = positive_mask(groups, ref_groups), negative_mask(groups, ref_groups)
    hardest_positive = similarity.masked_fill(~positive, float("inf")).amin(1, keepdim=True)
    hardest_negative = similarity.masked_fill(~negative, float("-inf")).amax(1, keepdim=True)
    mined_positive = positive & (similarity - epsilon < hardest_negative)
    mined_negative = negative & (similarity + epsilon > hardest_positive)
    return mined_positive, mined_negative


def multi_similarity_loss(
    similarity: Tensor,
    groups: Tensor,
    alpha: float,
    beta: float,
    base: float,
    epsilon: float | None,
    ref_groups: Tensor | None = None,
) -> Tensor:
    """Multi-Similarity loss (Wang et al. 2019), averaged over all anchors of the batch.

    ``1/alpha log(1 + sum_p exp(-alpha (s_p - base))) + 1/beta log(1 + sum_n exp(beta (s_n - base)))``
    over the pairs the miner keeps (``epsilon=None``: all pairs). Anchors with nothing mined add 0.
    """
    if epsilon is None:
        positive, negative = positive_mask(groups, ref_groups), negative_mask(groups, ref_groups)
    else:
        positive, negative = multi_similarity_mining(similarity, groups, epsilon, ref_groups)
    pull = masked_logsumexp(-alpha * (similarity - base), positive, add_one=True) / alpha
    push = masked_logsumexp(beta * (similarity - base), negative, add_one=True) / beta
    return (pull + push).mean()
