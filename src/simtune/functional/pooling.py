"""Pooling token states into one vector per sequence."""

from __future__ import annotations

from torch import Tensor


def mean_pool(states: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, T, D) token states, (B, T) mask -> (B, D): the mean over real tokens, padding excluded."""
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
