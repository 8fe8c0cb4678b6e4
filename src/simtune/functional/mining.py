"""Which rows of a batch are positives/negatives of which, and the mined ones, as O(B^2) tensor ops.

All functions take a ``(B, N)`` distance matrix (lower = closer) and boolean masks from
``positive_mask``/``negative_mask``; none builds a ``(B, B, N)`` tensor, so batch 2048 stays cheap.
The B rows are the anchors. The N columns are the batch itself (N = B) or, with references (cross-batch
memory), the batch followed by the references: every function works row by row, so anchors stay the
batch rows whatever the columns are.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _columns(groups: Tensor, ref_groups: Tensor | None) -> Tensor:
    return groups if ref_groups is None else torch.cat([groups, ref_groups])


def positive_mask(groups: Tensor, ref_groups: Tensor | None = None) -> Tensor:
    """``[a, p]`` is True when a and p share a group and are different rows (a row is not its own positive).

    With ``ref_groups`` (R,) the columns are the B batch rows then the R references: ``(B, B + R)``.
    """
    same = groups[:, None] == _columns(groups, ref_groups)[None, :]
    return same & ~torch.eye(*same.shape, dtype=torch.bool, device=groups.device)


def negative_mask(groups: Tensor, ref_groups: Tensor | None = None) -> Tensor:
    """``[a, n]`` is True when a and n are in different groups (so never on the diagonal); columns as in
    ``positive_mask``."""
    return groups[:, None] != _columns(groups, ref_groups)[None, :]


def hardest_positive(distances: Tensor, positives: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor the farthest positive's distance, and whether the anchor has any positive."""
    masked = distances.masked_fill(~positives, float("-inf"))
    values = masked.max(dim=1).values
    found = positives.any(dim=1)
    return torch.where(found, values, torch.zeros_like(values)), found


def hardest_negative(distances: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor]:
    """Per anchor the closest negative's distance, and whether the anchor has any negative."""
    masked = distances.masked_fill(~negatives, float("inf"))
    values = masked.min(dim=1).values
    found = negatives.any(dim=1)
    return torch.where(found, values, torch.zeros_like(values)), found


def sorted_negative_distances(distances: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor]:
    """Each anchor's negative distances in ascending order, padded with +inf; and how many there are.

    Sorting once per anchor turns "for every anchor-positive pair, look at every negative" (B^3)
    into a binary search (B^2 log B).
    """
    values = distances.masked_fill(~negatives, float("inf")).sort(dim=1).values
    return values, negatives.sum(dim=1)


def semi_hard_negative(distances: Tensor, positives: Tensor, negatives: Tensor) -> tuple[Tensor, Tensor]:
    """For every anchor-positive pair ``[a, p]`` the distance of the closest negative that is still
    strictly farther from a than p is (FaceNet's semi-hard negative), and whether one exists.

    Both outputs are shaped like ``distances``; entries that are not positive pairs are never ``found``.
    """
    sorted_negatives, counts = sorted_negative_distances(distances, negatives)
    first_farther = torch.searchsorted(sorted_negatives.detach(), distances.detach().contiguous(), right=True)
    found = positives & (first_farther < counts[:, None])
    index = first_farther.clamp_max(distances.shape[1] - 1)
    values = torch.gather(sorted_negatives, 1, index)
    return torch.where(found, values, torch.zeros_like(distances)), found


def margin_violation_sum(
    distances: Tensor, positives: Tensor, negatives: Tensor, margin: float
) -> tuple[Tensor, Tensor]:
    """Sum over all triplets (a, p, n) of ``relu(d_ap - d_an + margin)``, and the number of triplets
    where it is positive, without enumerating triplets.

    For a fixed anchor the violating negatives of p are those with ``d_an < d_ap + margin``: a prefix of
    the anchor's sorted negative distances. So the sum is ``count * (d_ap + margin) - prefix_sum``.
    """
    sorted_negatives, _ = sorted_negative_distances(distances, negatives)
    finite = torch.isfinite(sorted_negatives)
    prefix = torch.cat(
        [torch.zeros_like(distances[:, :1]), torch.where(finite, sorted_negatives, 0.0).cumsum(dim=1)], dim=1
    )
    thresholds = (distances + margin).detach().contiguous()
    count = torch.searchsorted(sorted_negatives.detach(), thresholds, right=False)
    count = torch.where(positives, count, torch.zeros_like(count))
    per_pair = count * (distances + margin) - torch.gather(prefix, 1, count)
    per_pair = torch.where(positives, per_pair, torch.zeros_like(per_pair))
    return per_pair.sum(), count.sum()
