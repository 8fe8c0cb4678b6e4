"""FastAP (Cakir et al. 2019): average precision made differentiable by soft distance histograms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from simtune.functional.mining import negative_mask, positive_mask

# Squared Euclidean distance between unit vectors lies in [0, 4]; the histogram spans that range.
MAX_DISTANCE = 4.0


def fast_ap_loss(embeddings: Tensor, groups: Tensor, num_bins: int) -> Tensor:
    """``1 - FastAP`` averaged over anchors that have a positive; 0 if none has.

    Every other embedding is spread over ``num_bins + 1`` bin centres ``z_l = l * 4 / num_bins`` with
    a triangular kernel ``relu(1 - |d - z_l| / delta)``; then per anchor
    ``FastAP = 1/N+ sum_l h+_l H+_l / H_l`` (h: histogram, H: cumulative, +: positives only).
    A distance touches only its two neighbouring bins, so the histograms are built by scattering two
    (B, B) weight matrices instead of a (bins, B, B) tensor.
    """
    positive, negative = positive_mask(groups), negative_mask(groups)
    unit = F.normalize(embeddings, dim=-1)
    distance = (2.0 - 2.0 * unit @ unit.T).clamp(0.0, MAX_DISTANCE)
    position = distance * (num_bins / MAX_DISTANCE)
    lower_bin = position.detach().floor().clamp(max=num_bins - 1).long()
    upper_weight = position - lower_bin
    lower_weight = 1.0 - upper_weight

    def histogram(mask: Tensor) -> Tensor:
        keep = mask.to(embeddings.dtype)
        counts = embeddings.new_zeros(len(groups), num_bins + 1)
        counts = counts.scatter_add(1, lower_bin, lower_weight * keep)
        return counts.scatter_add(1, lower_bin + 1, upper_weight * keep)

    positive_hist = histogram(positive)
    all_hist = positive_hist + histogram(negative)
    positive_cumulative = positive_hist.cumsum(1)
    all_cumulative = all_hist.cumsum(1)
    # Empty leading bins have H_l = 0 (and h+_l = 0): they add 0, through a safe denominator.
    filled = all_cumulative > 0
    safe_cumulative = torch.where(filled, all_cumulative, torch.ones_like(all_cumulative))
    precision_terms = torch.where(filled, positive_hist * positive_cumulative / safe_cumulative, 0.0)
    num_positives = positive.sum(1)
    has_positive = num_positives > 0
    fast_ap = precision_terms.sum(1) / num_positives.clamp_min(1)
    losses = torch.where(has_positive, 1.0 - fast_ap, torch.zeros_like(fast_ap))
    return losses.sum() / has_positive.sum().clamp_min(1)
