"""Helpers shared by the group losses: input checks, same/different-group masks, masked logsumexp."""

from __future__ import annotations

import torch
from torch import Tensor


def check_group_batch(embeddings: Tensor, groups: Tensor, num_groups: int | None = None) -> None:
    """Raise a ValueError that names the bad input instead of failing deep inside a loss."""
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be 2-D (batch, dim), got shape {tuple(embeddings.shape)}")
    if groups.dim() != 1 or groups.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"groups must be 1-D with one entry per embedding ({embeddings.shape[0]}), "
            f"got shape {tuple(groups.shape)}"
        )
    if groups.dtype.is_floating_point or groups.dtype.is_complex or groups.dtype == torch.bool:
        raise ValueError(f"groups must be an integer tensor, got {groups.dtype}")
    if num_groups is not None and groups.numel() and (groups.min() < 0 or groups.max() >= num_groups):
        raise ValueError(
            f"groups must lie in [0, num_groups={num_groups}), got values in "
            f"[{int(groups.min())}, {int(groups.max())}]"
        )


def group_masks(groups: Tensor) -> tuple[Tensor, Tensor]:
    """(positive, negative) boolean (B, B) masks; an embedding is never its own positive."""
    same = groups[:, None] == groups[None, :]
    positive = same & ~torch.eye(len(groups), dtype=torch.bool, device=groups.device)
    return positive, ~same


def masked_logsumexp(x: Tensor, mask: Tensor, dim: int = -1, add_one: bool = False) -> Tensor:
    """``log(sum_{mask} exp(x))`` (``log(1 + ...)`` with ``add_one``), stable, reducing ``dim``.

    An empty selection gives 0 with a zero, finite gradient (a plain ``logsumexp`` over ``-inf``
    would back-propagate NaN), so callers can mask such rows out without poisoning the gradient.
    """
    x = x.masked_fill(~mask, float("-inf"))
    shift = x.amax(dim, keepdim=True).detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    if add_one:
        shift = shift.clamp_min(0.0)
    total = torch.exp(x - shift).sum(dim)
    if add_one:
        total = total + torch.exp(-shift.squeeze(dim))
    output = shift.squeeze(dim) + torch.log(total.clamp_min(torch.finfo(x.dtype).tiny))
    return output if add_one else torch.where(mask.any(dim), output, torch.zeros_like(output))
