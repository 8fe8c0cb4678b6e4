"""A logsumexp over a masked selection, safe for empty selections (shared by the pair and proxy losses)."""

from __future__ import annotations

import torch
from torch import Tensor


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
